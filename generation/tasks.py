"""Celery tasks for generation. Thin: they take ids and call the worker or a service.

``run_generation_interactive`` and ``run_generation_bulk`` are routed to the ``interactive`` and
``bulk`` queues (config/celery_app.py), or to a GPU class's lane of them (``queues``);
``judge_generation`` (network judges) runs on ``default``,
and so does ``reap_generation_jobs``, from beat.
No torch at import time: the worker module imports the engine inside its functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from celery import shared_task
from django.db import transaction

if TYPE_CHECKING:
    from .models import GenerationJob


@shared_task(name="generation.tasks.run_generation_interactive", acks_late=True)
def run_generation_interactive(job_id: str) -> int:
    from .worker import generation_run

    return len(generation_run(job_id=job_id))


@shared_task(name="generation.tasks.run_generation_bulk", acks_late=True)
def run_generation_bulk(job_id: str) -> int:
    from .worker import generation_run

    return len(generation_run(job_id=job_id))


@shared_task(name="generation.tasks.judge_generation", acks_late=True)
def judge_generation(job_id: str, attempt: int) -> str | None:
    """The network judges (VLM, LLM refinement) of an attempt waiting in ``judging``."""
    from .outcomes import queued_judging_run

    job = queued_judging_run(job_id=job_id, attempt=attempt)
    return job.status if job else None


@shared_task(name="generation.tasks.reap_generation_jobs")
def reap_generation_jobs() -> dict[str, int]:
    from .services import generation_jobs_reap
    from .storage import storage_leftovers_collect

    counts = generation_jobs_reap()
    leftovers = storage_leftovers_collect()
    return {**counts, **{f"objects_{k}": v for k, v in leftovers.items()}}


def enqueue_generation(*, job: GenerationJob, countdown: float | None = None) -> None:
    """Send the job's task to its queue (its priority's, or its GPU class's lane: ``queues``)
    once the current transaction commits."""
    from .models import JobPriority
    from .queues import job_queue

    task = run_generation_bulk if job.priority == JobPriority.BULK else run_generation_interactive
    job_id = str(job.id)
    options: dict[str, object] = {"countdown": countdown} if countdown else {}
    queue = job_queue(job)
    if queue != job.priority:  # a GPU class's lane; the shared queues come from task_routes
        options["queue"] = queue
    transaction.on_commit(lambda: task.apply_async(args=[job_id], **options))


def enqueue_judging(*, job: GenerationJob) -> None:
    """Send the job's current attempt to the CPU worker's judges once the transaction commits."""
    job_id, attempt = str(job.id), job.attempts
    transaction.on_commit(lambda: judge_generation.apply_async(args=[job_id, attempt]))
