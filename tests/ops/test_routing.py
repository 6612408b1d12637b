"""Routing by GPU class: a family with a lane (``EASEL_FAMILY_QUEUES``) goes to its own queues, and
a worker takes only the jobs its queues carry — neither by message nor by draining the table.

The two-worker test runs real Celery workers on this machine against PostgreSQL, S3 and a Redis
database of its own: one consumes the shared queues (the small GPUs), the other only the ``big``
lane's (the ≥ 24 GB ones). The lane's family is ``sd15`` served by the tiny weights, so both kinds
of job take a second on CPU. Each worker's own exporter and JSON log say what it ran.
"""

from __future__ import annotations

import json
import time
from unittest import mock
from urllib.request import urlopen

import pytest
from prometheus_client.parser import text_string_to_metric_families

from generation import services, worker
from generation.models import GenerationJob, JobStatus
from tests.integration.faults import free_port
from tests.integration.test_generation_e2e import _wait, start_celery_worker, stop_worker

from .jobs import submit

LANES = {"sd15": "big"}
TINY = {"prompt": "a red apple", "model": "tiny", "steps": 2}
SD15 = {"prompt": "a blue box", "model": "tiny-as-sd15", "steps": 2}


@pytest.mark.django_db
def test_a_lane_familys_job_goes_to_its_lane_and_the_others_to_the_shared_queue(
    owner, sd15_base_model, settings, django_capture_on_commit_callbacks
):
    settings.EASEL_FAMILY_QUEUES = LANES
    with (
        mock.patch("generation.tasks.run_generation_interactive.apply_async") as interactive,
        mock.patch("generation.tasks.run_generation_bulk.apply_async") as bulk,
        django_capture_on_commit_callbacks(execute=True),
    ):
        tiny = services.generation_job_create(actor=owner.principal, data=TINY)
        big = services.generation_job_create(actor=owner.principal, data=SD15)
        big_bulk = services.generation_job_create(actor=owner.principal, data=SD15, priority="bulk")
    assert interactive.call_args_list == [
        mock.call(args=[str(tiny.id)]),  # the shared queue, by task_routes
        mock.call(args=[str(big.id)], queue="interactive-big"),
    ]
    bulk.assert_called_once_with(args=[str(big_bulk.id)], queue="bulk-big")


@pytest.mark.django_db
def test_a_draining_task_leaves_another_lanes_older_jobs_alone(
    owner, sd15_base_model, enqueued, local_pipeline, settings
):
    settings.EASEL_WORKER_DRAIN_SECONDS = 30
    settings.EASEL_FAMILY_QUEUES = LANES
    big = services.generation_job_create(actor=owner.principal, data=SD15)
    tiny = [
        services.generation_job_create(actor=owner.principal, data=TINY | {"steps": steps})
        for steps in (2, 3)  # two batches: the second is taken by draining
    ]
    ran = worker.generation_run(job_id=tiny[0].id)
    assert [job.id for job in ran] == [j.id for j in tiny]  # its own, then the next by draining
    big.refresh_from_db()
    assert big.status == JobStatus.PENDING and big.attempts == 0
    settings.EASEL_FAMILY_QUEUES = {}  # one pair of queues for every family: draining takes it
    # (oldest first: with the model-affinity bound at 0 the warm tiny pipeline earns no preference)
    settings.EASEL_AFFINITY_MAX_WAIT_SECONDS = 0
    another = services.generation_job_create(actor=owner.principal, data=TINY | {"steps": 4})
    ran = worker.generation_run(job_id=another.id)
    assert [job.id for job in ran] == [big.id, another.id]  # the oldest first, as before lanes


def _started(port: int) -> dict[tuple[str, str], float]:
    """``easel_generation_jobs_started_total`` by (queue, model), from a worker's exporter."""
    with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:  # noqa: S310
        text = response.read().decode()
    return {
        (s.labels["queue"], s.labels["model"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "easel_generation_jobs_started_total"
    }


def _tasks_run(process) -> set[str]:  # type: ignore[no-untyped-def]
    """The job ids of the tasks a worker ran, from the job_id of its JSON "succeeded" lines."""
    ids = set()
    for line in process.log_path.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record["logger"] == "celery.app.trace" and "succeeded" in record["message"]:
            ids.add(record["job_id"])
    return ids


def _statuses(ids: list[str]) -> set[str]:
    return set(GenerationJob.objects.filter(id__in=ids).values_list("status", flat=True))


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_two_workers_on_different_queues_each_take_only_their_own_jobs(
    owner, client_for, sd15_base_model, isolated_broker, tmp_path, settings
):
    settings.EASEL_FAMILY_QUEUES = LANES
    client = client_for(owner)
    big_jobs = submit(client, SD15, 2)  # the oldest: a worker draining every lane takes them first
    small_jobs = submit(client, TINY, 2)
    ports = {"small-gpu": free_port(), "big-gpu": free_port()}

    def start(name: str, queues: str):  # type: ignore[no-untyped-def]
        env = {
            "EASEL_FAMILY_QUEUES": "sd15=big",
            "EASEL_WORKER_DRAIN_SECONDS": "20",
            "EASEL_LOG_FORMAT": "json",
            "EASEL_WORKER_METRICS_ADDR": "127.0.0.1",
            "EASEL_WORKER_METRICS_PORT": str(ports[name]),
        }
        return start_celery_worker(
            broker=isolated_broker, tmp_path=tmp_path, queues=queues, name=name, env=env
        )

    small = start("small-gpu", "interactive,bulk")
    try:
        _wait(lambda: _statuses(small_jobs) == {JobStatus.SUCCEEDED}, "the tiny jobs", small)
        time.sleep(1)  # its tasks go on draining: there is nothing of its lane left
        assert _statuses(big_jobs) == {JobStatus.PENDING}
        big = start("big-gpu", "interactive-big,bulk-big")
        try:
            _wait(lambda: _statuses(big_jobs) == {JobStatus.SUCCEEDED}, "the sd15 jobs", big)
            ran_small, ran_big = _started(ports["small-gpu"]), _started(ports["big-gpu"])
        finally:
            stop_worker(big)
    finally:
        stop_worker(small)
    assert ran_small == {("interactive", "tiny"): 2}
    assert ran_big == {("interactive-big", "tiny-as-sd15"): 2}
    assert _tasks_run(small) == set(small_jobs)
    assert _tasks_run(big) == set(big_jobs)
