"""Which Celery queue a generation job goes to: routing by GPU class.

A job goes to its priority's queue, ``interactive`` or ``bulk``, unless ``EASEL_FAMILY_QUEUES``
gives its model family a *lane*: then to ``interactive-<lane>`` or ``bulk-<lane>``, which only the
workers whose GPU holds that family consume (an ``sdxl`` lane on ≥ 24 GB cards, the shared queues
everywhere else). The lane queues need no declaration: Celery creates a queue that a worker is
told to consume (``-Q``) or a task is sent to, the same way on both sides.

A task drains only its own lane's jobs from the database (``in_lane``), so a worker never takes,
by draining, a job that its queues would not have brought it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import Q

if TYPE_CHECKING:
    from .models import GenerationJob


def lane_of(family: str | None) -> str:
    """The lane of a model family; ``""`` for the shared ``interactive``/``bulk`` queues."""
    return settings.EASEL_FAMILY_QUEUES.get(family or "", "")


def queue_name(*, priority: str, lane: str) -> str:
    return f"{priority}-{lane}" if lane else priority


def job_queue(job: GenerationJob) -> str:
    """The queue ``job``'s message goes to (and the ``queue`` label of its metrics)."""
    return queue_name(priority=job.priority, lane=lane_of((job.params or {}).get("family")))


def in_lane(lane: str) -> Q:
    """A filter for the jobs whose family belongs to ``lane`` (``""``: every family without one)."""
    lanes: dict[str, str] = settings.EASEL_FAMILY_QUEUES
    if lane:
        return Q(params__family__in=[family for family, own in lanes.items() if own == lane])
    return ~Q(params__family__in=list(lanes)) if lanes else Q()
