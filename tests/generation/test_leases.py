"""The lease heartbeat renews a claim's leases from a background thread for as long as the claim
runs, skips rows another transaction holds instead of waiting on them, and stops with the block."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from generation.leases import lease_heartbeat, renew_leases
from generation.models import GenerationJob, JobStatus
from generation.services import generation_job_create


def _running_job(owner) -> GenerationJob:  # type: ignore[no-untyped-def]
    with mock.patch("generation.tasks.enqueue_generation"):
        job = generation_job_create(
            actor=owner.principal, data={"prompt": "a pear", "model": "tiny"}
        )
    past = timezone.now() - timedelta(minutes=5)
    GenerationJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, lease_expires_at=past)
    return job


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_renews_a_running_job_until_the_block_ends(owner, tiny_base_model, settings):
    settings.EASEL_JOB_HEARTBEAT_SECONDS = 0.01
    job = _running_job(owner)
    before = threading.active_count()
    with lease_heartbeat([job.id]):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.lease_expires_at > timezone.now() + timedelta(seconds=500):
                break
            time.sleep(0.01)
        assert job.lease_expires_at > timezone.now() + timedelta(seconds=500)
    assert threading.active_count() == before  # the thread is gone


@pytest.mark.django_db(transaction=True)
def test_renewal_skips_a_row_another_transaction_holds_and_leaves_finished_jobs(
    owner, tiny_base_model
):
    from django.db import transaction

    job = _running_job(owner)
    results: list[int] = []
    with transaction.atomic():
        GenerationJob.objects.select_for_update().get(pk=job.pk)  # held, as a finish would
        thread = threading.Thread(target=lambda: results.append(renew_leases([job.id])))
        thread.start()
        thread.join(timeout=10)
        assert not thread.is_alive() and results == [0]  # skipped at once, not waiting
    assert renew_leases([job.id]) == 1
    GenerationJob.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    assert renew_leases([job.id]) == 0
