"""Celery tasks for fine-tuning. Thin: they take ids and call the worker or a service.

``run_training_task`` is routed to the ``train`` queue (config/celery_app.py; one job at a time
per GPU); ``reap_training_jobs_task`` runs on ``default`` from beat. No torch at import time.
"""

from __future__ import annotations

from celery import shared_task


@shared_task(name="training.tasks.run_training_task", acks_late=True, reject_on_worker_lost=True)
def run_training_task(job_id: str) -> str | None:
    from .worker import training_run

    job = training_run(job_id=job_id)
    return job.status if job else None


@shared_task(name="training.tasks.reap_training_jobs_task")
def reap_training_jobs_task() -> dict[str, int]:
    from .services import training_jobs_reap

    return training_jobs_reap()
