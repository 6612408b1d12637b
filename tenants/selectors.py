"""Tenant-scoped reads. Every lookup of tenant data goes through ``get_for_org`` so that "absent"
and "another organization's" are the same 404."""

from __future__ import annotations

from typing import TypeVar

from django.core.exceptions import ValidationError
from django.db.models import Model, OuterRef, QuerySet, Subquery
from django.http import Http404

from .models import ApiKey, AuditEvent, Membership, Organization, Team

M = TypeVar("M", bound=Model)


def get_for_org(queryset: QuerySet[M], *, org: Organization, **lookup: object) -> M:
    """Return the one row matching ``lookup`` inside ``org`` or raise the same ``Http404``."""
    try:
        return queryset.get(organization=org, **lookup)
    # A malformed id (ValidationError for a UUID) names no row either: the same 404.
    except (queryset.model.DoesNotExist, ValidationError, ValueError, TypeError):
        raise Http404(f"No {queryset.model._meta.verbose_name} matches the given query.") from None


def get_team_for_org(*, org: Organization, team_id: int | str) -> Team:
    return get_for_org(Team.objects.all(), org=org, pk=team_id)


def get_api_key_for_org(*, org: Organization, api_key_id: int | str) -> ApiKey:
    return get_for_org(ApiKey.objects.select_related("team"), org=org, pk=api_key_id)


def get_optional_team_for_org(*, org: Organization, team_id: int | str | None) -> Team | None:
    """``None`` for "no team" (organization-wide), else the team, 404 if not in ``org``."""
    return None if team_id is None else get_team_for_org(org=org, team_id=team_id)


def team_list_for_org(*, org: Organization) -> QuerySet[Team]:
    return Team.objects.filter(organization=org)


def api_key_list_for_org(*, org: Organization) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(organization=org).select_related("team", "created_by")


def audit_event_list_for_org(*, org: Organization) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(organization=org).select_related("actor_user", "actor_api_key")


def api_key_by_prefix(*, prefix: str) -> ApiKey | None:
    """The key with ``prefix``, its organization and team, and ``creator_role``: what
    ``api_key_creator_role`` answers, read in the same query (authentication and the request's
    principal both need it; three queries became one)."""
    role = Membership.objects.filter(
        organization_id=OuterRef("organization_id"), user_id=OuterRef("created_by_id")
    ).values("role")[:1]
    return (
        ApiKey.objects.select_related("organization", "team")
        .annotate(creator_role=Subquery(role))
        .filter(prefix=prefix)
        .first()
    )


def api_key_creator_role(*, api_key: ApiKey) -> str | None:
    """The current role in the key's organization of the person who created ``api_key``;
    ``None`` when they are gone or no longer a member (the key must then stop working)."""
    if api_key.created_by_id is None:
        return None
    return (
        Membership.objects.filter(
            organization_id=api_key.organization_id, user_id=api_key.created_by_id
        )
        .values_list("role", flat=True)
        .first()
    )


def memberships_for_user(*, user: object) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(user=user)
        .select_related("organization")
        .order_by("organization__name")
    )
