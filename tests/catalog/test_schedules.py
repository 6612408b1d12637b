"""Schedules through the API: cron or interval in the organization's time zone, kept in step with
django-celery-beat's ``PeriodicTask``, validated with messages that name the field."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django_celery_beat.models import PeriodicTask

from catalog.models import CatalogSchedule

pytestmark = pytest.mark.django_db


def test_create_edit_and_delete_keep_beat_in_step(owner, catalog, client_for):
    owner.org.time_zone = "Europe/Berlin"
    owner.org.save()
    client = client_for(owner)
    with time_machine.travel(datetime(2026, 12, 3, 4, 0, tzinfo=ZoneInfo("UTC")), tick=False):
        response = client.post(
            "/api/v1/schedules", {"catalog": "spring", "cron": "0 6 * * 1-5"}, format="json"
        )
        assert response.status_code == 201, response.content
        body = response.json()
        assert (body["mode"], body["time_zone"], body["enabled"]) == (
            "missing",
            "Europe/Berlin",
            True,
        )
        # 06:00 in Berlin on a Thursday in winter is 05:00 UTC.
        assert body["next_run_at"].startswith("2026-12-03T05:00:00")
    task = PeriodicTask.objects.get(pk=CatalogSchedule.objects.get().periodic_task_id)
    assert task.task == "catalog.tasks.catalog_schedule_fire_task"
    assert json.loads(task.kwargs) == {"schedule_id": body["id"]}
    assert (task.crontab.hour, task.crontab.day_of_week, str(task.crontab.timezone)) == (
        "6",
        "1-5",
        "Europe/Berlin",
    )

    url = body["links"]["self"]
    response = client.patch(url, {"interval_minutes": 30, "mode": "changed"}, format="json")
    assert response.status_code == 200, response.content
    task.refresh_from_db()
    assert task.crontab is None and task.interval.every == 30
    assert response.json()["cron"] == ""
    response = client.patch(url, {"enabled": False}, format="json")
    task.refresh_from_db()
    assert not task.enabled and response.json()["next_run_at"] is None

    assert client.delete(url).status_code == 204
    assert not PeriodicTask.objects.filter(pk=task.pk).exists()


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"cron": "0 6 * *"}, "cron", "five fields"),
        ({"cron": "61 6 * * *"}, "cron", "Not a valid cron expression"),
        ({}, "cron", "either a cron expression or interval_minutes"),
        ({"cron": "0 6 * * *", "interval_minutes": 60}, "cron", "not both"),
        ({"interval_minutes": 1}, "interval_minutes", "shortest interval is 5 minutes"),
        ({"cron": "0 6 * * *", "time_zone": "Mars/Olympus"}, "time_zone", "Unknown time zone"),
        ({"cron": "0 6 * * *", "mode": "sometimes"}, "mode", "not a valid choice"),
    ],
)
def test_bad_schedules_are_400_naming_the_field(owner, catalog, client_for, body, field, message):
    response = client_for(owner).post(
        "/api/v1/schedules", {"catalog": "spring", **body}, format="json"
    )
    assert response.status_code == 400, response.content
    assert message in json.dumps(response.json()["error"]["fields"][field])
    assert (
        not CatalogSchedule.objects.exists()
        and not PeriodicTask.objects.filter(
            task="catalog.tasks.catalog_schedule_fire_task"
        ).exists()
    )


def test_a_schedule_of_another_org_is_a_404(owner, outsider, catalog, client_for):
    response = client_for(owner).post(
        "/api/v1/schedules", {"catalog": "spring", "interval_minutes": 60}, format="json"
    )
    url = response.json()["links"]["self"]
    theirs = client_for(outsider)
    assert theirs.get(url).status_code == 404
    assert theirs.patch(url, {"enabled": False}, format="json").status_code == 404
    assert theirs.delete(url).status_code == 404
    assert (
        theirs.post(
            "/api/v1/schedules", {"catalog": "spring", "interval_minutes": 60}, format="json"
        ).status_code
        == 404
    )
