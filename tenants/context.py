"""Resolve the acting ``Principal`` of a request (API key or signed-in member)."""

from __future__ import annotations

from django.http import HttpRequest

from .logcontext import log_context_bind
from .models import ApiKey, Membership
from .principal import Principal
from .selectors import api_key_creator_role

SESSION_ORG_KEY = "easel_org_id"
ORG_HEADER = "HTTP_X_EASEL_ORGANIZATION"


def principal_for_request(request: HttpRequest) -> Principal | None:
    cached = getattr(request, "_easel_principal", None)
    if cached is not None:
        return cached
    principal = _resolve(request)
    request._easel_principal = principal  # type: ignore[attr-defined]
    log_context_bind(organization=principal.org.slug if principal else "")
    return principal


def _resolve(request: HttpRequest) -> Principal | None:
    auth = getattr(request, "auth", None)
    if isinstance(auth, ApiKey):
        # Read with the key when it was authenticated (``api_key_by_prefix``), else now.
        creator_role = (
            auth.creator_role
            if hasattr(auth, "creator_role")
            else api_key_creator_role(api_key=auth)
        )
        if creator_role is None:  # the creator is no longer a member
            return None
        return Principal(
            org=auth.organization, api_key=auth, team=auth.team, key_creator_role=creator_role
        )
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    memberships = Membership.objects.filter(user=user).select_related("organization")
    wanted = request.META.get(ORG_HEADER)
    membership = None
    if wanted:
        membership = memberships.filter(organization__slug=wanted).first()
    elif hasattr(request, "session") and request.session.get(SESSION_ORG_KEY):
        membership = memberships.filter(organization_id=request.session[SESSION_ORG_KEY]).first()
    if membership is None and not wanted:
        membership = memberships.order_by("organization__name").first()
    if membership is None:
        return None
    team = membership.teams.order_by("name").first()
    return Principal(org=membership.organization, user=user, role=membership.role, team=team)
