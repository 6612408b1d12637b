"""A catalog schedule fires through beat: django-celery-beat's own ``DatabaseScheduler`` ticks
in this process under a controlled clock (``time_machine``; nothing sleeps to wait for 06:00),
sends the firing to Redis, and a real worker makes the run from it.

Beat is restarted between the ticks (a new scheduler reads the schedule back from the database),
so a schedule survives a beat restart.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine

from catalog.models import CatalogRun, RunStatus
from catalog.schedules import catalog_schedule_create
from catalog.services import catalog_create
from models_registry import services as registry

from .test_generation_e2e import _wait, start_celery_worker, stop_worker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BERLIN = ZoneInfo("Europe/Berlin")


def _tick(scheduler, times: int = 30) -> None:  # type: ignore[no-untyped-def]
    # Beat applies at most one due entry per tick; the platform's own entries are due too.
    for _ in range(times):
        scheduler.tick()


def test_a_cron_schedule_in_the_org_time_zone_fires_a_run_through_beat(
    owner, isolated_broker, tmp_path, tiny_base_model
):
    from django_celery_beat.schedulers import DatabaseScheduler

    from config.celery_app import app

    owner.org.time_zone = "Europe/Berlin"
    owner.org.save()
    registry.category_create(
        actor=owner.principal, slug="produce", name="Produce", base_model=tiny_base_model
    )
    catalog = catalog_create(actor=owner.principal, slug="spring")
    worker = start_celery_worker(
        broker=isolated_broker, tmp_path=tmp_path, queues="default", name="beat"
    )
    try:
        with time_machine.travel(datetime(2026, 12, 3, 5, 58, tzinfo=BERLIN), tick=False):
            schedule = catalog_schedule_create(
                actor=owner.principal, catalog=catalog, cron="0 6 * * *"
            )
            _tick(DatabaseScheduler(app=app))
        with time_machine.travel(datetime(2026, 12, 3, 5, 59, 50, tzinfo=BERLIN), tick=False):
            beat = DatabaseScheduler(app=app)  # beat restarted; 06:00 Berlin not reached yet
            _tick(beat)
            due, next_check = beat.schedule[f"catalog-schedule-{schedule.pk}"].is_due()
            assert not due and 0 < next_check <= 10
        with time_machine.travel(datetime(2026, 12, 3, 6, 0, 5, tzinfo=BERLIN), tick=False):
            _tick(DatabaseScheduler(app=app))  # restarted again, now past 06:00 in Berlin

        run = _wait(lambda: CatalogRun.objects.filter(schedule=schedule).first(), "the run", worker)
        assert (run.catalog_id, run.mode) == (catalog.pk, "missing")
        # An empty catalog: the run is selected and completed by the worker at once.
        _wait(
            lambda: CatalogRun.objects.filter(pk=run.pk, status=RunStatus.COMPLETED).exists(),
            "the scheduled run to complete",
            worker,
        )
        schedule.refresh_from_db()
        assert schedule.last_run_at is not None
        assert CatalogRun.objects.count() == 1
    finally:
        stop_worker(worker)
