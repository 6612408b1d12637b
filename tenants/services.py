"""Writes for tenancy: organizations, teams, members, API keys, audit events.

Every function changes state in one transaction and records an ``AuditEvent`` for changes a
person cares about.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from .models import ApiKey, AuditEvent, Membership, Organization, Team
from .principal import Principal
from .roles import ROLE_ACTIONS, Action, Role

LAST_USED_RESOLUTION = timedelta(minutes=1)
KEY_ALPHABET = string.ascii_letters + string.digits


def audit_event_record(
    *,
    org: Organization,
    actor: Principal | None,
    verb: str,
    obj: Any,
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEvent:
    return AuditEvent.objects.create(
        organization=org,
        actor_user=actor.user if actor else None,
        actor_api_key=actor.api_key if actor else None,
        verb=verb,
        object_type=obj._meta.label_lower if hasattr(obj, "_meta") else type(obj).__name__,
        object_id=str(getattr(obj, "pk", "")),
        before=before,
        after=after,
    )


def require(actor: Principal, action: str) -> None:
    if not actor.can(action):
        raise PermissionDenied(f"Your role does not allow '{action}'.")


@transaction.atomic
def organization_create(*, name: str, slug: str, owner: Any) -> Organization:
    org = Organization.objects.create(name=name, slug=slug)
    Membership.objects.create(organization=org, user=owner, role=Role.OWNER)
    actor = Principal(org=org, user=owner, role=Role.OWNER)
    audit_event_record(
        org=org,
        actor=actor,
        verb="organization.created",
        obj=org,
        after={"name": name, "slug": slug},
    )
    return org


@transaction.atomic
def team_create(*, actor: Principal, name: str, slug: str) -> Team:
    require(actor, Action.MANAGE_ORG)
    if Team.objects.filter(organization=actor.org, slug=slug).exists():
        raise ValidationError({"slug": f"A team with slug '{slug}' already exists."})
    team = Team.objects.create(organization=actor.org, name=name, slug=slug)
    audit_event_record(
        org=actor.org,
        actor=actor,
        verb="team.created",
        obj=team,
        after={"name": name, "slug": slug},
    )
    return team


@transaction.atomic
def membership_set(
    *, actor: Principal, user: Any, role: str, teams: list[Team] | None = None
) -> Membership:
    require(actor, Action.MANAGE_ORG)
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role '{role}'; use one of {Role.values}."})
    membership, created = Membership.objects.get_or_create(
        organization=actor.org, user=user, defaults={"role": role}
    )
    before = None if created else {"role": membership.role}
    membership.role = role
    membership.save(update_fields=["role"])
    if teams is not None:
        membership.teams.set(teams)
    audit_event_record(
        org=actor.org,
        actor=actor,
        verb="membership.set",
        obj=membership,
        before=before,
        after={"user": user.get_username(), "role": role},
    )
    return membership


def _hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _split_key(raw: str) -> tuple[str, str] | None:
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != settings.EASEL_API_KEY_PREFIX or not parts[1]:
        return None
    return parts[1], parts[2]


@transaction.atomic
def api_key_create(
    *,
    actor: Principal,
    team: Team,
    name: str,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Create a key for ``team``; returns the row and the secret, which is never shown again."""
    require(actor, Action.MANAGE_KEYS)
    if team.organization_id != actor.org.pk:
        raise ValidationError({"team": "No such team in this organization."})
    allowed = actor.actions
    scopes = list(dict.fromkeys(scopes or [Action.VIEW, Action.GENERATE]))
    unknown = [s for s in scopes if s not in Action.values]
    if unknown:
        raise ValidationError({"scopes": f"Unknown scopes {unknown}; use any of {Action.values}."})
    beyond = [s for s in scopes if s not in allowed]
    if beyond:
        raise ValidationError({"scopes": f"You cannot grant scopes you do not hold: {beyond}."})
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "Expiry must be in the future."})
    prefix = secrets.token_hex(4)
    secret = "".join(secrets.choice(KEY_ALPHABET) for _ in range(40))  # ~238 bits
    raw = f"{settings.EASEL_API_KEY_PREFIX}_{prefix}_{secret}"
    key = ApiKey.objects.create(
        organization=actor.org,
        team=team,
        name=name,
        prefix=prefix,
        secret_hash=_hash_key(raw),
        scopes=scopes,
        created_by=actor.user,
        expires_at=expires_at,
    )
    audit_event_record(
        org=actor.org,
        actor=actor,
        verb="api_key.created",
        obj=key,
        after={"name": name, "prefix": prefix, "team": team.slug, "scopes": scopes},
    )
    return key, raw


@transaction.atomic
def api_key_revoke(*, actor: Principal, api_key: ApiKey) -> ApiKey:
    require(actor, Action.MANAGE_KEYS)
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit_event_record(
            org=actor.org,
            actor=actor,
            verb="api_key.revoked",
            obj=api_key,
            before={"revoked_at": None},
            after={"revoked_at": api_key.revoked_at.isoformat()},
        )
    return api_key


class ApiKeyInvalid(Exception):
    """The presented key is malformed, unknown, revoked or expired (the message says which)."""


def api_key_authenticate(*, raw: str) -> ApiKey:
    parts = _split_key(raw)
    if parts is None:
        raise ApiKeyInvalid("Malformed API key: expected 'esl_<prefix>_<secret>'.")
    prefix, _secret = parts
    key = ApiKey.objects.select_related("organization", "team").filter(prefix=prefix).first()
    if key is None or not hmac.compare_digest(key.secret_hash, _hash_key(raw)):
        raise ApiKeyInvalid("Invalid API key.")
    now = timezone.now()
    if key.revoked_at is not None:
        raise ApiKeyInvalid("This API key has been revoked.")
    if key.expires_at is not None and key.expires_at <= now:
        raise ApiKeyInvalid("This API key has expired.")
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def user_create(*, username: str, password: str, email: str = "", is_staff: bool = False) -> Any:
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(
        username=username, defaults={"email": email, "is_staff": is_staff}
    )
    if created:
        user.set_password(password)
        user.save()
    return user


def grantable_scopes(role: str) -> list[str]:
    return sorted(ROLE_ACTIONS.get(role, frozenset()))
