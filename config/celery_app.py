"""The Celery application: queues, routes and reliability settings (the rest comes from Django
settings under the ``CELERY_`` namespace).

Queues: ``interactive`` and ``bulk`` (gpu workers, interactive first), ``train`` (one per GPU),
``default`` (cpu worker: webhooks, catalog runs and exports, reapers, quality-judge calls).
"""

import os

from celery import Celery
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
