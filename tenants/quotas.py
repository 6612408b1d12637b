"""Quotas and the usage ledger: reserve before work starts, settle with the real amount after,
release on failure or cancel.

Two limits, each optional (null = unlimited), for the whole organization (``Quota.team`` null)
and per team: ``images_per_day`` (UTC day) and ``gpu_seconds_per_month`` (UTC calendar month).
Both the organization's and the team's limit must hold. Usage counts in the period it was
reserved in; reserved and settled rows count, released ones do not.

Concurrency: ``quota_reserve`` locks the organization's org-wide ``Quota`` row (created on first
use, so there is always a row to lock) and then the team's, in that order, before it sums the
ledger. Reservations of one organization therefore run one at a time and can never overshoot a
limit together.

Idempotency: every function is keyed by ``reference`` (e.g. ``"job:<uuid>"``, unique across the
platform). Reserving a reference twice returns the first reservation; settling or releasing twice
changes nothing. Settling a released reservation records the usage anyway (the work was done);
releasing a settled one changes nothing. Settling or releasing an unknown reference logs a warning
and returns ``None``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q, QuerySet, Sum
from django.utils import timezone

from .audit import AuditVerb
from .errors import LimitExceeded
from .models import Organization, Quota, Team, UsageRecord
from .principal import Principal
from .roles import Action
from .services import audit_event_record, require

logger = logging.getLogger(__name__)

Kind = UsageRecord.Kind
State = UsageRecord.State
COUNTING = (State.RESERVED, State.SETTLED)
LIMIT_FIELD = {Kind.IMAGES: "images_per_day", Kind.GPU_SECONDS: "gpu_seconds_per_month"}


# --- Periods -------------------------------------------------------------------------------------


def day_start(now: datetime) -> datetime:
    now = now.astimezone(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC)


def month_start(now: datetime) -> datetime:
    now = now.astimezone(UTC)
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def period_bounds(kind: str, now: datetime) -> tuple[datetime, datetime]:
    """(start, reset) of the period containing ``now``: the UTC day for images, the UTC month for
    GPU-seconds."""
    if kind == Kind.IMAGES:
        start = day_start(now)
        return start, start + timedelta(days=1)
    start = month_start(now)
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return start, datetime(year, month, 1, tzinfo=UTC)


# --- Results and errors --------------------------------------------------------------------------


@dataclass(frozen=True)
class Reservation:
    reference: str
    organization_id: int
    team_id: int | None
    images: int
    gpu_seconds: float
    state: str


class QuotaExceeded(LimitExceeded):
    """A reservation would pass a limit. ``scope`` is "organization" or "team <slug>"."""

    code = "quota_exceeded"

    def __init__(
        self,
        *,
        limit_name: str,
        limit: float,
        used: float,
        requested: float,
        resets_at: datetime,
        scope: str = "organization",
    ) -> None:
        self.limit_name = limit_name
        self.limit = limit
        self.used = used
        self.requested = requested
        self.resets_at = resets_at
        self.scope = scope
        unit = "images per day" if limit_name == "images_per_day" else "GPU-seconds per month"
        super().__init__(
            f"Quota exceeded: the {scope} limit is {limit:g} {unit}; "
            f"{used:g} used or reserved, {requested:g} requested. It resets at "
            f"{resets_at.isoformat().replace('+00:00', 'Z')}; retry then, request fewer, "
            "or ask an organization owner to raise the quota.",
            retry_after=math.ceil((resets_at - timezone.now()).total_seconds()),
        )


# --- Reads ---------------------------------------------------------------------------------------


def _used(*, org: Organization, team: Team | None, kind: str, period_start: datetime) -> float:
    rows = UsageRecord.objects.filter(
        organization=org, kind=kind, period_start=period_start, state__in=COUNTING
    )
    if team is not None:
        rows = rows.filter(team=team)
    return rows.aggregate(total=Sum("amount"))["total"] or 0.0


def quota_list_for_org(*, org: Organization) -> QuerySet[Quota]:
    return Quota.objects.filter(organization=org).select_related("team").order_by("team__name")


def usage_summary(*, org: Organization, now: datetime | None = None) -> dict:
    """Images today and GPU-seconds this month, with limits and reset times, for the
    organization and each of its teams."""
    now = now or timezone.now()
    limits = {q.team_id: q for q in Quota.objects.filter(organization=org)}
    bounds = {kind: period_bounds(kind, now) for kind in Kind.values}
    by_team: dict[tuple[str, int | None], dict[str, float]] = {}
    for kind in Kind.values:
        rows = (
            UsageRecord.objects.filter(
                organization=org, kind=kind, period_start=bounds[kind][0], state__in=COUNTING
            )
            .values("team_id", "state")
            .annotate(total=Sum("amount"))
        )
        for row in rows:
            totals = by_team.setdefault((kind, row["team_id"]), {})
            totals[row["state"]] = row["total"] or 0.0

    def block(kind: str, team_id: int | None, *, whole_org: bool) -> dict:
        if whole_org:
            parts = [v for (k, _t), v in by_team.items() if k == kind]
        else:
            parts = [by_team.get((kind, team_id), {})]
        reserved = sum(p.get(State.RESERVED, 0.0) for p in parts)
        settled = sum(p.get(State.SETTLED, 0.0) for p in parts)
        quota = limits.get(team_id)
        limit = getattr(quota, LIMIT_FIELD[kind]) if quota else None
        used = reserved + settled
        return {
            "used": used,
            "settled": settled,
            "reserved": reserved,
            "limit": limit,
            "remaining": None if limit is None else max(0.0, limit - used),
            "period_start": bounds[kind][0],
            "resets_at": bounds[kind][1],
        }

    def scope(team_id: int | None, *, whole_org: bool) -> dict:
        return {
            "images_today": block(Kind.IMAGES, team_id, whole_org=whole_org),
            "gpu_seconds_this_month": block(Kind.GPU_SECONDS, team_id, whole_org=whole_org),
        }

    teams = Team.objects.filter(organization=org).order_by("name")
    return {
        "organization": {"id": org.pk, "slug": org.slug, **scope(None, whole_org=True)},
        "teams": [
            {"id": t.pk, "slug": t.slug, "name": t.name, **scope(t.pk, whole_org=False)}
            for t in teams
        ],
    }


# --- Writes --------------------------------------------------------------------------------------


def _lock_quotas(*, org: Organization, team: Team | None) -> tuple[Quota, Quota | None]:
    """Lock the org-wide row (creating it if needed), then the team's row if it has one.

    One query locks both, the org-wide row first (``team`` nulls first), the order every
    reservation takes them in, so two never wait on each other's second row."""
    scope = Q(team__isnull=True) | Q(team=team) if team is not None else Q(team__isnull=True)
    locked = Quota.objects.select_for_update().filter(scope, organization=org)
    rows = list(locked.order_by(F("team_id").asc(nulls_first=True)))
    if not rows or rows[0].team_id is not None:  # the organization's first reservation
        Quota.objects.get_or_create(organization=org, team=None)
        rows = list(locked.order_by(F("team_id").asc(nulls_first=True)))
    return rows[0], rows[1] if len(rows) > 1 else None


def _reservation(reference: str, rows: list[UsageRecord]) -> Reservation:
    amounts = {r.kind: r.amount for r in rows}
    first = rows[0]
    states = {r.state for r in rows}
    state = first.state if len(states) == 1 else State.SETTLED
    return Reservation(
        reference=reference,
        organization_id=first.organization_id,
        team_id=first.team_id,
        images=int(amounts.get(Kind.IMAGES, 0)),
        gpu_seconds=float(amounts.get(Kind.GPU_SECONDS, 0.0)),
        state=state,
    )


@transaction.atomic
def quota_reserve(
    *, org: Organization, team: Team | None, images: int, gpu_seconds: float, reference: str
) -> Reservation:
    """Reserve ``images`` for today and an estimate of ``gpu_seconds`` for this month, or raise
    ``QuotaExceeded`` naming the first limit that would be passed."""
    if images < 0 or gpu_seconds < 0:
        raise ValueError("images and gpu_seconds must not be negative")
    if team is not None and team.organization_id != org.pk:
        raise ValueError("team belongs to another organization")
    org_quota, team_quota = _lock_quotas(org=org, team=team)
    existing = list(UsageRecord.objects.filter(reference=reference))
    if existing:
        if existing[0].organization_id != org.pk:
            raise ValueError(f"reference {reference!r} is already used by another organization")
        return _reservation(reference, existing)
    now = timezone.now()
    requested = {Kind.IMAGES: float(images), Kind.GPU_SECONDS: float(gpu_seconds)}
    for kind, amount in requested.items():
        if amount <= 0:
            continue
        start, resets_at = period_bounds(kind, now)
        checks = [(org_quota, None, "organization")]
        if team_quota is not None:
            checks.append((team_quota, team, f"team '{team.slug}'"))
        for quota, scope_team, scope_name in checks:
            limit = getattr(quota, LIMIT_FIELD[kind])
            if limit is None:
                continue
            used = _used(org=org, team=scope_team, kind=kind, period_start=start)
            if used + amount > limit:
                raise QuotaExceeded(
                    limit_name=LIMIT_FIELD[kind],
                    limit=limit,
                    used=used,
                    requested=amount,
                    resets_at=resets_at,
                    scope=scope_name,
                )
    rows = UsageRecord.objects.bulk_create(
        UsageRecord(
            organization=org,
            team=team,
            kind=kind,
            amount=amount,
            reference=reference,
            period_start=period_bounds(kind, now)[0],
            created_at=now,
        )
        for kind, amount in requested.items()
    )
    return _reservation(reference, rows)


@transaction.atomic
def quota_settle(*, reference: str, images: int, gpu_seconds: float) -> Reservation | None:
    """Turn a reservation into actual usage: the images produced and the GPU-seconds measured."""
    rows = list(UsageRecord.objects.select_for_update().filter(reference=reference))
    if not rows:
        logger.warning("quota_settle: no reservation %r; nothing recorded", reference)
        return None
    now = timezone.now()
    actual = {Kind.IMAGES: float(images), Kind.GPU_SECONDS: float(gpu_seconds)}
    for row in rows:
        if row.state == State.SETTLED:
            continue
        row.amount = actual[row.kind]
        row.state = State.SETTLED
        row.settled_at = now
        row.save(update_fields=["amount", "state", "settled_at"])
    return _reservation(reference, rows)


@transaction.atomic
def quota_release(*, reference: str) -> Reservation | None:
    """Give a reservation back (the job failed or was canceled before producing anything)."""
    rows = list(UsageRecord.objects.select_for_update().filter(reference=reference))
    if not rows:
        logger.warning("quota_release: no reservation %r; nothing released", reference)
        return None
    now = timezone.now()
    for row in rows:
        if row.state == State.RESERVED:
            row.state = State.RELEASED
            row.settled_at = now
            row.save(update_fields=["state", "settled_at"])
    return _reservation(reference, rows)


def _quota_dict(quota: Quota | None) -> dict | None:
    if quota is None:
        return None
    return {
        "images_per_day": quota.images_per_day,
        "gpu_seconds_per_month": quota.gpu_seconds_per_month,
    }


@transaction.atomic
def quota_set(
    *,
    actor: Principal,
    org: Organization,
    team: Team | None = None,
    images_per_day: int | None,
    gpu_seconds_per_month: float | None,
) -> Quota:
    """Set the org-wide limits (``team`` None) or a team's; None means unlimited. Audited."""
    require(actor, Action.MANAGE_ORG)
    if org.pk != actor.org.pk:
        raise ValidationError({"organization": "You can only set quotas of your organization."})
    if team is not None and team.organization_id != org.pk:
        raise ValidationError({"team": "No such team in this organization."})
    errors = {}
    if images_per_day is not None and images_per_day < 0:
        errors["images_per_day"] = "Must be 0 or more (null for unlimited)."
    if gpu_seconds_per_month is not None and (
        gpu_seconds_per_month < 0 or not math.isfinite(gpu_seconds_per_month)
    ):
        errors["gpu_seconds_per_month"] = "Must be 0 or more (null for unlimited)."
    if errors:
        raise ValidationError(errors)
    if team is None:
        Quota.objects.get_or_create(organization=org, team=None)
    else:
        # Same lock order as quota_reserve (org row first), so the two never deadlock.
        Quota.objects.get_or_create(organization=org, team=None)
        Quota.objects.select_for_update().get(organization=org, team=None)
        Quota.objects.get_or_create(organization=org, team=team)
    quota = Quota.objects.select_for_update().get(
        Q(team=team) if team is not None else Q(team__isnull=True), organization=org
    )
    before = _quota_dict(quota)
    quota.images_per_day = images_per_day
    quota.gpu_seconds_per_month = gpu_seconds_per_month
    quota.updated_at = timezone.now()
    quota.save(update_fields=["images_per_day", "gpu_seconds_per_month", "updated_at"])
    audit_event_record(
        org=org,
        actor=actor,
        verb=AuditVerb.QUOTA_SET,
        obj=quota,
        before=before,
        after={**_quota_dict(quota), "team": team.slug if team else None},
    )
    return quota
