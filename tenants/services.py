"""Writes for tenancy: organizations, teams, members, API keys, audit events.

Every function changes state in one transaction and records an ``AuditEvent`` for changes a
person cares about.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from .audit import AuditVerb
from .models import MAX_API_KEY_LIFETIME_DAYS as MAX_LIFETIME_DAYS
from .models import ApiKey, AuditEvent, Membership, Organization, Team
from .principal import Principal
from .roles import ROLE_ACTIONS, Action, Role
from .selectors import api_key_by_prefix

LAST_USED_RESOLUTION = timedelta(minutes=1)
KEY_ALPHABET = string.ascii_letters + string.digits


def audit_event_record(
    *,
    org: Organization,
    actor: Principal | None,
    verb: AuditVerb,
    obj: Any,
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEvent:
    return AuditEvent.objects.create(
        organization=org,
        actor_user=actor.user if actor else None,
        actor_api_key=actor.api_key if actor else None,
        verb=AuditVerb(verb),  # ValueError for a verb that is not in the enum
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
        verb=AuditVerb.ORGANIZATION_CREATED,
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
        verb=AuditVerb.TEAM_CREATED,
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
    if teams is not None and any(t.organization_id != actor.org.pk for t in teams):
        raise ValidationError({"teams": "No such team in this organization."})
    membership, created = Membership.objects.get_or_create(
        organization=actor.org, user=user, defaults={"role": role}
    )
    before = None if created else _membership_snapshot(membership)
    membership.role = role
    membership.save(update_fields=["role"])
    if teams is not None:
        membership.teams.set(teams)
    audit_event_record(
        org=actor.org,
        actor=actor,
        verb=AuditVerb.MEMBERSHIP_SET,
        obj=membership,
        before=before,
        after=_membership_snapshot(membership),
    )
    return membership


def _membership_snapshot(membership: Membership) -> dict[str, Any]:
    return {
        "user": membership.user.get_username(),
        "role": membership.role,
        "teams": sorted(membership.teams.values_list("slug", flat=True)),
    }


@transaction.atomic
def membership_remove(*, actor: Principal, membership: Membership) -> None:
    """Remove a person from the organization; the API keys they created stop working with it."""
    require(actor, Action.MANAGE_ORG)
    if membership.organization_id != actor.org.pk:
        raise ValidationError({"membership": "No such member in this organization."})
    audit_event_record(
        org=actor.org,
        actor=actor,
        verb=AuditVerb.MEMBERSHIP_REMOVED,
        obj=membership,
        before=_membership_snapshot(membership),
    )
    membership.delete()


@transaction.atomic
def organization_api_key_max_lifetime_set(
    *, actor: Principal, api_key_max_lifetime_days: int | None
) -> Organization:
    """Cap how long new API keys of the actor's organization may live (``None``: no cap).

    Keys that already exist keep their expiry; revoke them to apply a new cap at once.
    """
    require(actor, Action.MANAGE_ORG)
    days = api_key_max_lifetime_days
    if days is not None and (
        isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_LIFETIME_DAYS
    ):
        raise ValidationError(
            {
                "api_key_max_lifetime_days": f"Give a whole number of days from 1 to "
                f"{MAX_LIFETIME_DAYS}, or null for no limit."
            }
        )
    org = Organization.objects.select_for_update().get(pk=actor.org.pk)
    before = org.api_key_max_lifetime_days
    if before != days:
        org.api_key_max_lifetime_days = days
        org.save(update_fields=["api_key_max_lifetime_days"])
        audit_event_record(
            org=org,
            actor=actor,
            verb=AuditVerb.ORGANIZATION_API_KEY_MAX_LIFETIME_CHANGED,
            obj=org,
            before={"api_key_max_lifetime_days": before},
            after={"api_key_max_lifetime_days": days},
        )
    return org


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
    """Create a key for ``team``; returns the row and the secret, which is never shown again.

    A key never carries scopes its creator lacks. A key minted by a key (``manage_keys``)
    answers to the person behind the minting key, must expire, and expires no later than it.
    The organization's ``api_key_max_lifetime_days``, when set, bounds every key's expiry.
    """
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
    _check_key_expiry(actor=actor, expires_at=expires_at)
    parent = actor.api_key
    answerable = actor.user if actor.user is not None else getattr(parent, "created_by", None)
    if answerable is None:
        raise PermissionDenied("An API key needs a person answerable for it; sign in to make one.")
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
        created_by=answerable,
        created_by_api_key=parent,
        expires_at=expires_at,
    )
    audit_event_record(
        org=actor.org,
        actor=actor,
        verb=AuditVerb.API_KEY_CREATED,
        obj=key,
        after={
            "name": name,
            "prefix": prefix,
            "team": team.slug,
            "scopes": scopes,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return key, raw


def _check_key_expiry(*, actor: Principal, expires_at: datetime | None) -> None:
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise ValidationError({"expires_at": "Expiry must be in the future."})
    parent = actor.api_key
    if parent is not None:
        latest = f" no later than {_iso(parent.expires_at)}" if parent.expires_at else ""
        if expires_at is None:
            message = f"A key created with an API key must expire; set expires_at{latest}."
            raise ValidationError({"expires_at": message})
        if parent.expires_at is not None and expires_at > parent.expires_at:
            raise ValidationError(
                {
                    "expires_at": "A key created with an API key cannot outlive it: set "
                    f"expires_at{latest}, when the creating key expires."
                }
            )
    max_days = (
        Organization.objects.filter(pk=actor.org.pk)
        .values_list("api_key_max_lifetime_days", flat=True)
        .first()
    )
    if max_days is not None:
        latest_allowed = now + timedelta(days=max_days)
        if expires_at is None or expires_at > latest_allowed:
            raise ValidationError(
                {
                    "expires_at": f"This organization's API keys live at most {max_days} days: "
                    f"set expires_at no later than {_iso(latest_allowed)}."
                }
            )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@transaction.atomic
def api_key_revoke(*, actor: Principal, api_key: ApiKey) -> ApiKey:
    """Revoke ``api_key`` and every key minted with it (and with those, and so on): a leaked key
    must not survive its revocation through a key it created."""
    require(actor, Action.MANAGE_KEYS)
    now = timezone.now()
    pending: list[tuple[ApiKey, ApiKey | None]] = [(api_key, None)]
    seen: set[int] = set()
    while pending:
        key, because_of = pending.pop()
        if key.pk in seen:
            continue
        seen.add(key.pk)
        if key.revoked_at is None:
            key.revoked_at = now
            key.save(update_fields=["revoked_at"])
            after: dict[str, Any] = {"revoked_at": now.isoformat()}
            if because_of is not None:
                after["with_creating_key"] = because_of.prefix
            audit_event_record(
                org=actor.org,
                actor=actor,
                verb=AuditVerb.API_KEY_REVOKED,
                obj=key,
                before={"revoked_at": None},
                after=after,
            )
        children = ApiKey.objects.filter(organization=actor.org, created_by_api_key=key)
        pending.extend((child, key) for child in children)
    return api_key


class ApiKeyInvalid(Exception):
    """The presented key is malformed, unknown, revoked or expired (the message says which)."""


def api_key_authenticate(*, raw: str) -> ApiKey:
    parts = _split_key(raw)
    if parts is None:
        raise ApiKeyInvalid("Malformed API key: expected 'esl_<prefix>_<secret>'.")
    prefix, _secret = parts
    key = api_key_by_prefix(prefix=prefix)
    if key is None or not hmac.compare_digest(key.secret_hash, _hash_key(raw)):
        raise ApiKeyInvalid("Invalid API key.")
    now = timezone.now()
    if key.revoked_at is not None:
        raise ApiKeyInvalid("This API key has been revoked.")
    if key.expires_at is not None and key.expires_at <= now:
        raise ApiKeyInvalid("This API key has expired.")
    if key.creator_role is None:
        raise ApiKeyInvalid(
            "This API key no longer works: the person who created it is no longer a member of "
            f"'{key.organization.slug}'. Ask an admin of the organization for a new key."
        )
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
