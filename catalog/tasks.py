"""Celery tasks for catalogs. Thin: they take ids and call a service.

All run on the ``default`` (CPU) queue: selecting a run's products, advancing it, building its
export, beat's sweep and a schedule's firing. The generation jobs a run submits go to ``bulk``
like any other bulk job. ``enqueue_*`` send a task once the caller's transaction commits, so a
worker never looks for a row that is not there yet.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import transaction


@shared_task(name="catalog.tasks.catalog_run_start_task", acks_late=True)
def catalog_run_start_task(run_id: str) -> str | None:
    from .runs import catalog_run_start

    run = catalog_run_start(run_id=run_id)
    return run.status if run else None


@shared_task(name="catalog.tasks.catalog_run_advance_task", acks_late=True)
def catalog_run_advance_task(run_id: str) -> int:
    from .runs import catalog_run_advance

    return catalog_run_advance(run_id=run_id)


@shared_task(name="catalog.tasks.catalog_export_task", acks_late=True)
def catalog_export_task(run_id: str, announce: bool = False) -> str:
    from .exports import catalog_export_build

    return catalog_export_build(run_id=run_id, announce=announce).export_status


@shared_task(name="catalog.tasks.catalog_runs_sweep_task")
def catalog_runs_sweep_task() -> dict[str, int]:
    from .runs import catalog_runs_sweep

    return catalog_runs_sweep()


@shared_task(name="catalog.tasks.catalog_schedule_fire_task")
def catalog_schedule_fire_task(schedule_id: int) -> str | None:
    """What django-celery-beat calls for a ``CatalogSchedule``: start a run of its catalog."""
    from .schedules import catalog_schedule_fire

    run = catalog_schedule_fire(schedule_id=schedule_id)
    return str(run.pk) if run else None


def _on_commit(task: Any, *args: Any, **kwargs: Any) -> None:
    transaction.on_commit(lambda: task.apply_async(args=args, kwargs=kwargs))


def enqueue_run_start(run: Any) -> None:
    _on_commit(catalog_run_start_task, str(run.pk))


def enqueue_run_advance(run_id: Any) -> None:
    _on_commit(catalog_run_advance_task, str(run_id))


def enqueue_export(run_id: Any, *, announce: bool = False) -> None:
    _on_commit(catalog_export_task, str(run_id), announce=announce)
