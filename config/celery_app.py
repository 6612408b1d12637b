"""The Celery application: queues, routes and reliability settings (the rest comes from Django
settings under the ``CELERY_`` namespace).

Queues: ``interactive`` and ``bulk`` (gpu workers, interactive first), ``train`` (one per GPU),
``default`` (cpu worker: webhooks, catalog runs and exports, reapers, quality-judge calls). A model
family given a lane by ``EASEL_FAMILY_QUEUES`` has ``interactive-<lane>`` and ``bulk-<lane>``
instead (generation/queues.py), created on first use by the worker that consumes them and the
process that sends to them.

Worker signals: each worker process serves its metrics on ``EASEL_WORKER_METRICS_PORT`` once
ready, and every task starts with the log context of its job (or none).
"""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_ready
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("easel")
app.config_from_object("django.conf:settings", namespace="CELERY")

_exchange = Exchange("easel", type="direct")
QUEUES = ("interactive", "bulk", "train", "default")
app.conf.task_queues = tuple(Queue(name, _exchange, routing_key=name) for name in QUEUES)
app.conf.task_default_queue = "default"
app.conf.task_default_exchange = "easel"
app.conf.task_default_routing_key = "default"
app.conf.task_routes = {
    "generation.tasks.run_generation_interactive": {"queue": "interactive"},
    "generation.tasks.run_generation_bulk": {"queue": "bulk"},
    "training.tasks.reap_training_jobs_task": {"queue": "default"},
    "training.tasks.*": {"queue": "train"},
    "models_registry.tasks.*": {"queue": "train"},
    "catalog.tasks.*": {"queue": "default"},
}
app.autodiscover_tasks()

# Periodic platform tasks (django-celery-beat copies these into its database schedule).
app.conf.beat_schedule = {
    **(app.conf.beat_schedule or {}),
    "webhook-deliveries-sweep": {
        "task": "tenants.tasks.webhook_deliveries_sweep_task",
        "schedule": 30.0,
        "options": {"queue": "default", "expires": 25},
    },
    "idempotency-records-purge": {
        "task": "tenants.tasks.idempotency_records_purge_task",
        "schedule": 3600.0,
        "options": {"queue": "default"},
    },
}

# Generation reaper: re-enqueue jobs whose lease ran out, fail those out of attempts.
app.conf.beat_schedule = {
    **(app.conf.beat_schedule or {}),
    "generation-jobs-reap": {
        "task": "generation.tasks.reap_generation_jobs",
        "schedule": 60.0,
        "options": {"queue": "default", "expires": 55},
    },
    # Training reaper: a job whose worker was lost goes back to pending; the next one resumes.
    "training-jobs-reap": {
        "task": "training.tasks.reap_training_jobs_task",
        "schedule": 60.0,
        "options": {"queue": "default", "expires": 55},
    },
}

# Catalog runs: start runs whose start was lost, settle items whose signal was lost, and advance
# running runs (a run also advances whenever one of its jobs finishes).
app.conf.beat_schedule = {
    **(app.conf.beat_schedule or {}),
    "catalog-runs-sweep": {
        "task": "catalog.tasks.catalog_runs_sweep_task",
        "schedule": 30.0,
        "options": {"queue": "default", "expires": 25},
    },
}


# Tasks whose first argument is a generation or training job's id (their log lines name it).
JOB_TASKS = frozenset(
    {
        "generation.tasks.run_generation_interactive",
        "generation.tasks.run_generation_bulk",
        "generation.tasks.judge_generation",
        "training.tasks.run_training_task",
    }
)


@worker_ready.connect
def _serve_worker_metrics(**_: object) -> None:
    from .metrics import worker_metrics_serve

    worker_metrics_serve()


@task_prerun.connect
def _bind_task_log_context(sender=None, args=None, **_: object) -> None:  # type: ignore[no-untyped-def]
    from tenants.logcontext import log_context_bind

    job_id = args[0] if getattr(sender, "name", None) in JOB_TASKS and args else ""
    log_context_bind(request_id="", organization="", job_id=job_id)


@task_postrun.connect
def _clear_task_log_context(**_: object) -> None:
    # The solo pool runs tasks in the consumer's thread: its next lines are about no job.
    from tenants.logcontext import log_context_bind

    log_context_bind(request_id="", organization="", job_id="")
