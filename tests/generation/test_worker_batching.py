"""Batch formation on the worker: the bounded gathering window (dynamic batching) and model
affinity. The clock is the boundary patched: a fake monotonic clock that advances when the
window sleeps, and jobs that "arrive" during a sleep; claiming, batching and running are real."""

from __future__ import annotations

from unittest import mock

import pytest

from generation import scheduling, worker
from generation.models import GenerationJob, JobPriority, JobStatus


@pytest.fixture(autouse=True)
def _cold_worker(monkeypatch):
    monkeypatch.setattr(worker, "_warm", None)


class FakeClock:
    """``time`` for the scheduler: ``sleep`` advances ``monotonic`` and runs ``on_sleep``."""

    def __init__(self, on_sleep=lambda: None) -> None:  # type: ignore[no-untyped-def]
        self.now = 1000.0
        self.slept: list[float] = []
        self.on_sleep = on_sleep

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        self.on_sleep()


@pytest.mark.usefixtures("local_pipeline")
def test_a_job_arriving_within_the_window_joins_the_batch(submit, settings):
    settings.EASEL_BATCH_WINDOW_MS = 20
    leader = submit(seed=1)
    arrived: list[GenerationJob] = []
    clock = FakeClock(lambda: arrived or arrived.append(submit(seed=2, prompt="a blue box")))
    with mock.patch.object(scheduling, "time", clock):
        ran = worker.generation_run(job_id=leader.id)
    assert {job.id for job in ran} == {leader.id, arrived[0].id}
    for job in ran:
        job.refresh_from_db()
        assert job.status == JobStatus.SUCCEEDED and job.batch_size == 2
    assert sum(clock.slept) <= 0.020 + 1e-9  # the whole window, never more


@pytest.mark.usefixtures("local_pipeline")
def test_a_lone_job_waits_no_longer_than_the_window(submit, settings):
    settings.EASEL_BATCH_WINDOW_MS = 5
    settings.EASEL_BULK_BATCH_WINDOW_MS = 50
    clock = FakeClock()
    with mock.patch.object(scheduling, "time", clock):
        worker.generation_run(job_id=submit(seed=1).id)
        interactive_wait = sum(clock.slept)
        clock.slept.clear()
        worker.generation_run(job_id=submit(JobPriority.BULK, seed=2).id)
    assert 0 < interactive_wait <= 0.005 + 1e-9
    assert 0.005 < sum(clock.slept) <= 0.050 + 1e-9  # bulk work may wait for its batch longer


@pytest.mark.usefixtures("local_pipeline")
def test_a_full_batch_or_a_zero_window_starts_at_once(submit, settings):
    settings.EASEL_BATCH_SIZE = 2
    settings.EASEL_BATCH_WINDOW_MS = 20
    clock = FakeClock()
    jobs = [submit(seed=1), submit(seed=2)]
    with mock.patch.object(scheduling, "time", clock):
        ran = worker.generation_run(job_id=jobs[0].id)
        assert len(ran) == 2 and clock.slept == []
        settings.EASEL_BATCH_WINDOW_MS = 0
        worker.generation_run(job_id=submit(seed=3).id)
    assert clock.slept == []


def _mixed_backlog(submit) -> list[GenerationJob]:  # type: ignore[no-untyped-def]
    """Base, LoRA, base, LoRA — in that order, none batchable with the next (steps differ)."""
    return [
        submit(steps=2),
        submit(model=None, category="produce", steps=2),
        submit(steps=3),
        submit(model=None, category="produce", steps=3),
    ]


def test_a_worker_takes_jobs_for_its_warm_model_first(submit, produce_lora, settings, tmp_path):
    settings.EASEL_MODEL_CACHE_DIR = tmp_path / "model-cache"
    settings.EASEL_WORKER_DRAIN_SECONDS = 60
    base, lora, base_again, lora_again = _mixed_backlog(submit)
    assert lora.model_version_id == produce_lora.id and base.model_version_id is None
    ran = worker.generation_run(job_id=base.id)
    # Fair order alone would be base, lora, base, lora: three adapter switches instead of one.
    assert [job.id for job in ran] == [base.id, base_again.id, lora.id, lora_again.id]
    statuses = GenerationJob.objects.filter(id__in=[job.id for job in ran]).values_list(
        "status", flat=True
    )
    assert set(statuses) == {JobStatus.SUCCEEDED}


def test_affinity_never_holds_a_job_past_its_bound(submit, produce_lora, settings, tmp_path):
    settings.EASEL_MODEL_CACHE_DIR = tmp_path / "model-cache"
    settings.EASEL_WORKER_DRAIN_SECONDS = 60
    settings.EASEL_AFFINITY_MAX_WAIT_SECONDS = 0  # everything has waited "too long": oldest first
    base, lora, base_again, lora_again = _mixed_backlog(submit)
    ran = worker.generation_run(job_id=base.id)
    assert [job.id for job in ran] == [base.id, lora.id, base_again.id, lora_again.id]
