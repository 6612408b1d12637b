"""No object is ever left behind: each is recorded before it is written and un-recorded with the
image row that refers to it; a storage failure part-way deletes what was written (or leaves it
recorded when storage cannot delete either), and the collector removes what a crashed writer left.

Storage is patched at its boundary (``default_storage.save`` / ``delete``); the worker is real."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.core.files.storage import default_storage

from generation import services, storage, worker
from generation.models import GenerationJob, JobStatus, PendingObject

from ..factories import make_image_row

BASE = {"prompt": "a red apple", "model": "tiny", "steps": 2, "seed": 11}
pytestmark = [pytest.mark.usefixtures("local_pipeline"), pytest.mark.django_db]


@pytest.fixture
def submit(owner, tiny_base_model, enqueued):  # type: ignore[no-untyped-def]
    return lambda **extra: services.generation_job_create(actor=owner.principal, data=BASE | extra)


def _objects(job: GenerationJob) -> list[str]:
    prefix = storage.job_prefix(org_id=job.organization_id, job_id=job.id)
    try:
        _dirs, files = default_storage.listdir(prefix)
    except FileNotFoundError:
        return []
    return sorted(files)


def test_a_finished_job_leaves_no_pending_rows(submit):
    job = submit(num_images=2)
    worker.generation_run(job_id=job.id)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert len(_objects(job)) == 4 and not PendingObject.objects.exists()


def test_storage_failing_part_way_deletes_what_was_written(submit):
    job = submit(num_images=2)
    real_save, calls = default_storage.save, []

    def flaky(name, content, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(name)
        if len(calls) == 3:  # the second image's PNG
            raise ConnectionError("storage went away")
        return real_save(name, content, *args, **kwargs)

    with mock.patch.object(default_storage, "save", side_effect=flaky):
        worker.generation_run(job_id=job.id)
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING and "storage went away" in job.error_message  # retried
    assert not job.images.exists()
    assert _objects(job) == [] and not PendingObject.objects.exists()


def test_what_storage_cannot_delete_stays_recorded_and_is_collected_later(submit):
    job = submit()
    real_save, calls = default_storage.save, []

    def flaky(name, content, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(name)
        if len(calls) == 2:
            raise ConnectionError("storage went away")
        return real_save(name, content, *args, **kwargs)

    with (
        mock.patch.object(default_storage, "save", side_effect=flaky),
        mock.patch.object(default_storage, "delete", side_effect=ConnectionError("still away")),
    ):
        worker.generation_run(job_id=job.id)
    left = _objects(job)
    assert left == ["0-1.png"]  # written before the outage, not deletable during it
    assert set(PendingObject.objects.values_list("key", flat=True)) >= {
        storage.image_key(org_id=job.organization_id, job_id=job.id, index=0, attempt=1)
    }
    with mock.patch.object(default_storage, "delete", side_effect=ConnectionError("still away")):
        assert storage.storage_leftovers_collect(older_than=timedelta(0))["failed"] >= 1
    assert storage.storage_leftovers_collect(older_than=timedelta(0))["deleted"] >= 1
    assert _objects(job) == [] and not PendingObject.objects.exists()


def test_the_collector_removes_a_crashed_writers_objects_and_keeps_referred_ones(submit):
    job = submit(num_images=2)
    kept = make_image_row(job, index=0)
    orphan = storage.image_key(org_id=job.organization_id, job_id=job.id, index=1, attempt=1)
    # A worker recorded both, wrote both, recorded image 0's row and died before image 1's.
    storage.objects_intended(job_id=job.id, keys=[kept.storage_key, orphan])
    storage.write_object(kept.storage_key, b"kept")
    storage.write_object(orphan, b"orphan")
    assert storage.storage_leftovers_collect()["deleted"] == 0  # younger than the lease: wait
    counts = storage.storage_leftovers_collect(older_than=timedelta(0))
    assert counts == {"deleted": 1, "kept": 1, "failed": 0}
    assert _objects(job) == ["0-1.png"] and not PendingObject.objects.exists()
