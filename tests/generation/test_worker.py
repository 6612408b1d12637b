"""The GPU worker in-process: claim, batching, storage with metadata, cancel, retries, reaper.

The pipeline comes from the tiny model on disk, loaded once per test session (``local_pipeline``
in conftest.py stands in for the registry's pipeline cache, which tests/generation/
test_worker_adapters.py exercises); everything else (claim, batch, store, finish) is the real code.
"""

from __future__ import annotations

import io
from datetime import timedelta
from unittest import mock

import numpy as np
import pytest
from django.utils import timezone
from PIL import Image

from generation import services, storage, worker
from generation.engine import inference
from generation.models import GenerationJob, JobPriority, JobStatus
from tenants.models import UsageRecord

pytestmark = pytest.mark.usefixtures("local_pipeline")


def _pixels(image) -> np.ndarray:
    data = storage.read_object(image.storage_key)
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=int)


def test_a_job_runs_and_its_images_are_stored_with_metadata(submit):
    job = submit(num_images=2)
    ran = worker.generation_run(job_id=job.id)
    job.refresh_from_db()
    assert [j.id for j in ran] == [job.id]
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 1 and job.gpu_seconds > 0
    images = list(job.images.order_by("index"))
    assert [i.seed for i in images] == [11, 12]
    for image in images:
        assert image.storage_key == (
            f"orgs/{job.organization_id}/generations/{job.id}/{image.index}-1.png"
        )
        data = storage.read_object(image.storage_key)
        assert storage.sha256_hex(data) == image.sha256
        meta = storage.read_png_metadata(data)
        assert meta["prompt"] == "a red apple"
        assert meta["seed"] == str(image.seed)
        assert '"steps": 2' in meta["parameters"]
        assert (image.width, image.height) == (64, 64)
        assert storage.read_object(image.thumbnail_key)[:4] == b"RIFF"
    settled = UsageRecord.objects.filter(reference=job.quota_reference)
    assert {r.state for r in settled} == {"settled"}


def test_every_status_change_is_audited_in_order(submit):
    from tenants.models import AuditEvent

    job = submit()
    worker.generation_run(job_id=job.id)
    events = AuditEvent.objects.filter(object_id=str(job.id)).order_by("at", "id")
    assert [(e.verb, (e.before or {}).get("status")) for e in events] == [
        ("generation.submitted", None),
        ("generation.started", "pending"),
        ("generation.succeeded", "running"),
    ]


def test_a_redelivered_task_finds_the_job_claimed_and_does_nothing(submit):
    job = submit()
    worker.generation_run(job_id=job.id)
    assert worker.generation_run(job_id=job.id) == []
    assert worker.claim_job(job_id=job.id) is None
    job.refresh_from_db()
    assert job.attempts == 1 and job.images.count() == 1


def test_batching_groups_only_compatible_jobs(submit):
    first = submit(seed=1)
    mates = [submit(seed=2, prompt="a blue box"), submit(seed=3, negative_prompt="blurry")]
    other_steps = submit(seed=4, steps=3)
    other_size = submit(seed=5, width=32, height=32)
    other_cfg = submit(seed=6, cfg_scale=3.0)
    bulk = submit(JobPriority.BULK, seed=7)
    ran = worker.generation_run(job_id=first.id)
    assert {j.id for j in ran} == {first.id, *(m.id for m in mates)}
    for job in (first, *mates):
        job.refresh_from_db()
        assert job.status == JobStatus.SUCCEEDED and job.batch_size == 3
    for job in (other_steps, other_size, other_cfg, bulk):
        job.refresh_from_db()
        assert job.status == JobStatus.PENDING


def test_batch_size_limits_how_many_images_share_a_call(submit, settings):
    settings.EASEL_BATCH_SIZE = 3
    jobs = [submit(seed=i, num_images=2 if i == 0 else 1) for i in range(4)]
    ran = worker.generation_run(job_id=jobs[0].id)
    assert sum(j.num_images for j in ran) == 3
    assert len(ran) == 2


def test_a_batched_image_equals_the_same_job_run_alone(submit):
    alone = submit(seed=21, prompt="a green pear")
    worker.generation_run(job_id=alone.id)
    leader = submit(seed=5, prompt="a yellow lemon")
    twin = submit(seed=21, prompt="a green pear")
    worker.generation_run(job_id=leader.id)
    twin.refresh_from_db()
    assert twin.status == JobStatus.SUCCEEDED and twin.batch_size == 2
    diff = np.abs(_pixels(alone.images.get()) - _pixels(twin.images.get()))
    assert diff.max() <= 2  # float rounding in batched matmuls at most; same seed, same image


def test_bulk_task_runs_pending_interactive_jobs_first(submit):
    bulk = submit(JobPriority.BULK, seed=1, steps=3)
    interactive = submit(seed=2)
    ran = worker.generation_run(job_id=bulk.id)
    assert [j.id for j in ran] == [interactive.id, bulk.id]


def test_a_task_drains_pending_jobs_of_its_priority_but_not_bulk(submit, settings):
    settings.EASEL_WORKER_DRAIN_SECONDS = 60
    first = submit(seed=1)
    other_steps = submit(seed=2, steps=3)
    bulk = submit(JobPriority.BULK, seed=3)
    backing_off = submit(seed=4, steps=4)
    GenerationJob.objects.filter(id=backing_off.id).update(attempts=1)  # waits for its retry
    ran = worker.generation_run(job_id=first.id)
    assert [j.id for j in ran] == [first.id, other_steps.id]
    for job in (bulk, backing_off):
        job.refresh_from_db()
        assert job.status == JobStatus.PENDING
    assert worker.generation_run(job_id=other_steps.id) == []  # its message comes later: no-op


def test_cancel_before_the_run_means_the_worker_never_starts_it(submit, owner):
    job = submit()
    services.generation_job_cancel(actor=owner.principal, job=job)
    assert worker.generation_run(job_id=job.id) == []
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELED and job.attempts == 0 and not job.images.exists()


def _cancel_at_step(step: int, job_ids: list, seen: list | None = None):
    """Run the real inference, asking to cancel ``job_ids`` once ``step`` steps are done."""
    real = inference.run_batch

    def run(pipe, spec, *, on_step=None):
        def hook(done: int, total: int) -> bool:
            if seen is not None:
                seen.append(done)
            if done == step:
                GenerationJob.objects.filter(id__in=job_ids).update(cancel_requested=True)
            return on_step(done, total)

        return real(pipe, spec, on_step=hook)

    return mock.patch.object(inference, "run_batch", run)


def test_cancel_during_the_run_stops_between_steps(submit):
    job = submit(steps=4)
    GenerationJob.objects.filter(id=job.id).update(status=JobStatus.PENDING)
    seen: list[int] = []
    with _cancel_at_step(2, [job.id], seen):
        worker.generation_run(job_id=job.id)
    job.refresh_from_db()
    assert seen == [1, 2]  # steps 3 and 4 never ran
    assert job.status == JobStatus.CANCELED and not job.images.exists()
    records = UsageRecord.objects.filter(reference=job.quota_reference)
    assert {r.state for r in records} == {"released"}


def test_canceling_one_job_of_a_batch_keeps_the_others(submit):
    keep = submit(seed=1)
    drop = submit(seed=2)
    with _cancel_at_step(1, [drop.id]):
        worker.generation_run(job_id=keep.id)
    keep.refresh_from_db()
    drop.refresh_from_db()
    assert keep.status == JobStatus.SUCCEEDED and keep.images.count() == 1
    assert drop.status == JobStatus.CANCELED and not drop.images.exists()


def test_a_failing_pipeline_is_retried_then_failed_with_an_actionable_error(submit, enqueued):
    job = submit()
    enqueued.clear()

    def broken(pipe, spec, *, on_step=None):
        raise RuntimeError("device lost")

    with mock.patch.object(inference, "run_batch", broken):
        worker.generation_run(job_id=job.id)
        job.refresh_from_db()
        assert job.status == JobStatus.PENDING and "Attempt 1 failed" in job.error_message
        assert enqueued == [str(job.id)]
        for _ in range(job.max_attempts - 1):
            worker.generation_run(job_id=job.id)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.error_code == "worker_error"
    assert f"Failed after {job.max_attempts} attempts" in job.error_message
    assert "device lost" in job.error_message and "Submit again" in job.error_message


def test_an_impossible_request_fails_at_once_without_retries(submit):
    job = submit()

    def bad(pipe, spec, *, on_step=None):
        raise ValueError("Width and height must be positive multiples of 8.")

    with mock.patch.object(inference, "run_batch", bad):
        worker.generation_run(job_id=job.id)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.attempts == 1
    assert job.error_code == "invalid_parameters"


def test_reaper_requeues_a_job_whose_worker_vanished_and_fails_it_when_out_of_attempts(
    submit, enqueued
):
    job = submit()
    enqueued.clear()
    assert worker.claim_job(job_id=job.id) is not None
    later = timezone.now() + timedelta(seconds=job.max_attempts * 10_000)
    counts = services.generation_jobs_reap(now=later)
    job.refresh_from_db()
    assert counts["requeued"] == 1 and job.status == JobStatus.PENDING
    assert enqueued == [str(job.id)]
    GenerationJob.objects.filter(id=job.id).update(
        status=JobStatus.RUNNING, attempts=job.max_attempts, lease_expires_at=timezone.now()
    )
    services.generation_jobs_reap(now=later)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.error_code == "worker_lost"
    assert "stopped responding" in job.error_message


def test_reaper_resends_a_pending_job_whose_message_was_lost(submit, enqueued):
    job = submit()
    enqueued.clear()
    later = timezone.now() + timedelta(days=1)
    assert services.generation_jobs_reap(now=later)["resent"] == 1
    assert enqueued == [str(job.id)]
    assert services.generation_jobs_reap(now=timezone.now())["resent"] == 0
