"""The lease heartbeat: while a worker holds claimed jobs, a background thread renews their
leases every ``EASEL_JOB_HEARTBEAT_SECONDS``, for the whole claim — artifact download, pipeline
load, inference, storing, a hosted provider's call — not only between denoising steps. A worker
that dies stops renewing, its leases run out after ``EASEL_JOB_LEASE_SECONDS`` and the reaper
hands the jobs to another; a worker that is merely slow keeps them.

Renewal takes only rows no one else has locked (``SKIP LOCKED``), so it never waits on the
worker's own finishing transaction; a row skipped once is renewed on the next beat.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Iterator
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.utils import timezone

from .models import GenerationJob, JobStatus

logger = logging.getLogger(__name__)


def renew_leases(job_ids: Iterable[object]) -> int:
    """Extend the leases of those of ``job_ids`` still running; how many were renewed."""
    ids = list(job_ids)
    if not ids:
        return 0
    until = timezone.now() + timedelta(seconds=settings.EASEL_JOB_LEASE_SECONDS)
    with transaction.atomic():
        free = list(
            GenerationJob.objects.select_for_update(skip_locked=True)
            .filter(id__in=ids, status=JobStatus.RUNNING)
            .values_list("id", flat=True)
        )
        return GenerationJob.objects.filter(id__in=free).update(lease_expires_at=until)


class _Heartbeat(threading.Thread):
    def __init__(self, job_ids: list[object], interval: float) -> None:
        super().__init__(name="easel-lease-heartbeat", daemon=True)
        self.job_ids = job_ids
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(self.interval):
                try:
                    renew_leases(self.job_ids)
                except DatabaseError:  # the database is away: try again on the next beat
                    logger.warning("could not renew the leases of %s", self.job_ids, exc_info=True)
                    close_old_connections()
        finally:
            connection.close()  # this thread's own connection


@contextlib.contextmanager
def lease_heartbeat(job_ids: Iterable[object]) -> Iterator[_Heartbeat]:
    """Renew the leases of ``job_ids`` (and of ids appended to ``.job_ids`` later, e.g. batch
    mates claimed after the leader) in the background until the block ends."""
    beat = _Heartbeat(list(job_ids), float(settings.EASEL_JOB_HEARTBEAT_SECONDS))
    beat.start()
    try:
        yield beat
    finally:
        beat.stopped.set()
        beat.join(timeout=10)
