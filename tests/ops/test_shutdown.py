"""Graceful shutdown: on SIGTERM a GPU worker finishes the batch in hand and claims nothing more,
so nothing is lost (every other job's message is still in the broker for the next worker) and
nothing is left running.

tests/integration/test_faults.py shows a warm shutdown finishes the batch with draining off; here
draining is on, as in production, and a second batch waits: the stopping worker must leave it.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from generation import services, worker
from generation.models import GenerationJob, JobStatus
from tests.integration.test_faults import QUEUES, SHORT_LEASES, _denoising, _wait_closely
from tests.integration.test_generation_e2e import _wait, start_celery_worker, stop_worker

from .jobs import submit


@pytest.fixture
def shutdown_flag() -> Iterator[None]:
    yield
    worker.shutting_down.clear()


@pytest.mark.django_db
def test_a_shutdown_mid_drain_runs_nothing_more_and_sends_the_tasks_own_job_back(
    owner, outsider, tiny_base_model, enqueued, local_pipeline, settings, shutdown_flag
):
    settings.EASEL_WORKER_DRAIN_SECONDS = 60
    body = {"prompt": "a red apple", "model": "tiny", "steps": 2}
    theirs = services.generation_job_create(actor=outsider.principal, data=body)  # the fair pick
    own = services.generation_job_create(actor=owner.principal, data=body | {"steps": 3})
    later = services.generation_job_create(actor=outsider.principal, data=body | {"steps": 4})
    enqueued.clear()

    def sigterm_during_the_call(prompts: list[str]) -> None:
        worker.shutting_down.set()  # what Celery's worker_shutting_down does on SIGTERM
        return None

    local_pipeline.fail_when(sigterm_during_the_call)
    ran = worker.generation_run(job_id=own.id)
    assert [job.id for job in ran] == [theirs.id]
    statuses = dict(GenerationJob.objects.values_list("id", "status"))
    assert statuses == {
        theirs.id: JobStatus.SUCCEEDED,
        own.id: JobStatus.PENDING,
        later.id: JobStatus.PENDING,
    }
    # The task's own message is acknowledged when it returns: it sent the job again.
    assert enqueued == [str(own.id)]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_sigterm_while_draining_finishes_the_batch_claims_nothing_more_and_loses_nothing(
    owner, client_for, tiny_base_model, isolated_broker, tmp_path
):
    client = client_for(owner)
    body = {"prompt": "a red apple", "model": "tiny"}
    batch = submit(client, body | {"steps": 60}, 2)  # one pipeline call, seconds of denoising
    waiting = submit(client, body | {"steps": 2}, 2)  # another batch: what draining takes next
    env = SHORT_LEASES | {"EASEL_WORKER_DRAIN_SECONDS": "120"}
    first = start_celery_worker(
        broker=isolated_broker, tmp_path=tmp_path, queues=QUEUES, name="stopping", env=env
    )
    try:
        _wait_closely(lambda: _denoising(batch), "the batch to be denoising", first)
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=120)
    finally:
        stop_worker(first)
    assert first.returncode == 0
    assert {(j.status, j.attempts) for j in GenerationJob.objects.filter(id__in=batch)} == {
        (JobStatus.SUCCEEDED, 1)
    }
    assert {(j.status, j.attempts) for j in GenerationJob.objects.filter(id__in=waiting)} == {
        (JobStatus.PENDING, 0)
    }
    assert not GenerationJob.objects.filter(status=JobStatus.RUNNING).exists()
    heir = start_celery_worker(
        broker=isolated_broker, tmp_path=tmp_path, queues=QUEUES, name="heir", env=env
    )
    try:
        _wait(
            lambda: (
                GenerationJob.objects.filter(id__in=waiting, status=JobStatus.SUCCEEDED).count()
                == len(waiting)
            ),
            "the waiting jobs on the next worker",
            heir,
        )
    finally:
        stop_worker(heir)
    for job in GenerationJob.objects.filter(id__in=batch + waiting):
        assert job.attempts == 1 and job.images.count() == 1, job.id
