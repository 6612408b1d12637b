"""Catalog schedules: a ``CatalogSchedule`` and the django-celery-beat ``PeriodicTask`` that fires
it, kept in step in one transaction.

A schedule is a cron expression (five fields, read in the schedule's time zone, which defaults to
the organization's) or an interval in minutes. Beat's ``DatabaseScheduler`` notices the change by
itself (django-celery-beat bumps ``PeriodicTasks.last_update`` on every save), so no restart is
needed, and a restarted beat picks up where the table says. A firing makes a run like a person's
``POST /catalog-runs`` would, unless the previous scheduled run of the same schedule is still
going (then the firing is skipped, so a slow run is not stacked on).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from tenants.audit import AuditVerb
from tenants.models import validate_time_zone
from tenants.principal import Principal
from tenants.roles import Action
from tenants.services import audit_event_record, require

from .models import RUN_FINISHED, Catalog, CatalogRun, CatalogSchedule, RunMode

FIRE_TASK = "catalog.tasks.catalog_schedule_fire_task"
MIN_INTERVAL_MINUTES = 5
CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


def parse_cron(expression: str) -> dict[str, str]:
    """The five fields of a cron expression, checked by celery's own parser."""
    from celery.schedules import ParseException, crontab

    fields = expression.split()
    if len(fields) != 5:
        raise ValidationError(
            {"cron": "A cron expression has five fields: minute hour day month weekday."}
        )
    values = dict(zip(CRON_FIELDS, fields, strict=True))
    try:
        crontab(**values)
    except (ParseException, ValueError) as exc:
        raise ValidationError({"cron": f"Not a valid cron expression: {exc}."}) from None
    return values


def _check(*, mode: str, cron: str, interval_minutes: int | None, time_zone: str) -> None:
    if mode not in RunMode.values:
        raise ValidationError({"mode": f"Unknown mode '{mode}'; use one of {RunMode.values}."})
    if bool(cron) == (interval_minutes is not None):
        raise ValidationError(
            {"cron": "Give either a cron expression or interval_minutes, not both or neither."}
        )
    if interval_minutes is not None and interval_minutes < MIN_INTERVAL_MINUTES:
        raise ValidationError(
            {"interval_minutes": f"The shortest interval is {MIN_INTERVAL_MINUTES} minutes."}
        )
    if cron:
        parse_cron(cron)
    try:
        validate_time_zone(time_zone)
    except ValidationError as exc:
        raise ValidationError({"time_zone": exc.messages}) from None


def _sync_periodic_task(schedule: CatalogSchedule) -> None:
    """Create or update the beat row for ``schedule`` (its clock and whether it is enabled)."""
    if schedule.cron:
        clock, _ = CrontabSchedule.objects.get_or_create(
            **parse_cron(schedule.cron), timezone=schedule.time_zone
        )
        clocks: dict[str, Any] = {"crontab": clock, "interval": None}
    else:
        clock, _ = IntervalSchedule.objects.get_or_create(
            every=schedule.interval_minutes, period=IntervalSchedule.MINUTES
        )
        clocks = {"crontab": None, "interval": clock}
    task = schedule.periodic_task or PeriodicTask(name=f"catalog-schedule-{schedule.pk}")
    task.task = FIRE_TASK
    task.kwargs = json.dumps({"schedule_id": schedule.pk})
    task.queue = "default"
    task.enabled = schedule.enabled
    task.crontab, task.interval = clocks["crontab"], clocks["interval"]
    task.save()
    if schedule.periodic_task_id != task.pk:
        schedule.periodic_task = task
        schedule.save(update_fields=["periodic_task"])


def _snapshot(schedule: CatalogSchedule) -> dict[str, Any]:
    return {
        "catalog": schedule.catalog.slug,
        "mode": schedule.mode,
        "cron": schedule.cron,
        "interval_minutes": schedule.interval_minutes,
        "time_zone": schedule.time_zone,
        "enabled": schedule.enabled,
    }


@transaction.atomic
def catalog_schedule_create(
    *,
    actor: Principal,
    catalog: Catalog,
    mode: str = RunMode.MISSING,
    cron: str = "",
    interval_minutes: int | None = None,
    time_zone: str = "",
    enabled: bool = True,
) -> CatalogSchedule:
    require(actor, Action.TRAIN)
    time_zone = time_zone or actor.org.time_zone
    cron = " ".join(cron.split())
    _check(mode=mode, cron=cron, interval_minutes=interval_minutes, time_zone=time_zone)
    schedule = CatalogSchedule.objects.create(
        organization=actor.org,
        catalog=catalog,
        mode=mode,
        cron=cron,
        interval_minutes=interval_minutes,
        time_zone=time_zone,
        enabled=enabled,
        created_by=actor.person,
    )
    _sync_periodic_task(schedule)
    audit_event_record(
        org=actor.org,
        actor=actor,
        verb=AuditVerb.CATALOG_SCHEDULE_CREATED,
        obj=schedule,
        after=_snapshot(schedule),
    )
    return schedule


UPDATABLE = ("mode", "cron", "interval_minutes", "time_zone", "enabled")


@transaction.atomic
def catalog_schedule_update(
    *, actor: Principal, schedule: CatalogSchedule, changes: dict[str, Any]
) -> CatalogSchedule:
    """Change any of ``UPDATABLE``; giving ``cron`` clears the interval and the other way round."""
    require(actor, Action.TRAIN)
    schedule = CatalogSchedule.objects.select_for_update().get(pk=schedule.pk)
    before = _snapshot(schedule)
    unknown = set(changes) - set(UPDATABLE)
    if unknown:
        raise ValidationError(dict.fromkeys(sorted(unknown), "This field cannot be changed."))
    if changes.get("cron") and changes.get("interval_minutes") is not None:
        raise ValidationError(
            {"cron": "Give either a cron expression or interval_minutes, not both."}
        )
    if changes.get("cron"):
        changes = {**changes, "cron": " ".join(changes["cron"].split()), "interval_minutes": None}
    elif changes.get("interval_minutes") is not None:
        changes = {**changes, "cron": ""}
    for field, value in changes.items():
        setattr(schedule, field, value)
    _check(
        mode=schedule.mode,
        cron=schedule.cron,
        interval_minutes=schedule.interval_minutes,
        time_zone=schedule.time_zone,
    )
    schedule.save()
    _sync_periodic_task(schedule)
    audit_event_record(
        org=actor.org,
        actor=actor,
        verb=AuditVerb.CATALOG_SCHEDULE_UPDATED,
        obj=schedule,
        before=before,
        after=_snapshot(schedule),
    )
    return schedule


@transaction.atomic
def catalog_schedule_delete(*, actor: Principal, schedule: CatalogSchedule) -> None:
    require(actor, Action.TRAIN)
    audit_event_record(
        org=actor.org,
        actor=actor,
        verb=AuditVerb.CATALOG_SCHEDULE_DELETED,
        obj=schedule,
        before=_snapshot(schedule),
    )
    if schedule.periodic_task_id:
        PeriodicTask.objects.filter(pk=schedule.periodic_task_id).delete()
    schedule.delete()


def catalog_schedule_fire(*, schedule_id: int) -> CatalogRun | None:
    """Start a run for the schedule; None when it is gone, disabled, or its last run is still
    going."""
    from .runs import catalog_run_create

    with transaction.atomic():
        schedule = (
            CatalogSchedule.objects.select_for_update()
            .select_related("catalog", "catalog__organization")
            .filter(pk=schedule_id)
            .first()
        )
        if schedule is None or not schedule.enabled:
            return None
        if schedule.runs.exclude(status__in=RUN_FINISHED).exists():
            return None
        schedule.last_run_at = timezone.now()
        schedule.save(update_fields=["last_run_at"])
        return catalog_run_create(
            actor=None, catalog=schedule.catalog, mode=schedule.mode, schedule=schedule
        )


def next_run_at(schedule: CatalogSchedule) -> datetime | None:
    """When beat will next fire the schedule (None when disabled), from beat's own clock."""
    task = schedule.periodic_task
    if task is None or not schedule.enabled:
        return None
    now = timezone.now()
    clock = task.schedule
    remaining = clock.remaining_estimate(task.last_run_at or now)
    return now + max(remaining, timedelta(0))
