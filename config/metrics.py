"""``/metrics`` for Prometheus, and the worker-side exporter.

The web's page holds django-prometheus's request series and the platform's own (``tenants.metrics``)
of this process, or of every process on the host that writes to ``PROMETHEUS_MULTIPROC_DIR``
(gunicorn's workers), plus the queue depth read from the database when scraped: jobs waiting and
running per queue and the age of the oldest waiting one — the figures to scale GPU workers on.

Like ``/readyz``, it is for operators: a staff session or ``Authorization: Bearer
<EASEL_METRICS_TOKEN>``; anyone else gets 403. A Celery worker serves its own process's series on
``EASEL_WORKER_METRICS_PORT`` (``worker_metrics_serve``); that exporter has no authentication and
belongs on a private network.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from tenants.health import bearer_token_matches, is_staff

logger = logging.getLogger(__name__)

SHARED_QUEUES = ("interactive", "bulk", "train")


class QueueDepthCollector:
    """``easel_queue_depth``, ``easel_queue_running`` and ``easel_queue_oldest_waiting_seconds``
    per queue, from the jobs table (the broker's own count includes delayed retries and
    duplicate messages; the table says what is really waiting)."""

    def collect(self) -> Iterator[Metric]:
        from generation.models import GenerationJob, JobStatus
        from generation.queues import lane_of, queue_name
        from training.models import TrainingJob, TrainingStatus

        waiting: dict[str, int] = defaultdict(int)
        running: dict[str, int] = defaultdict(int)
        oldest: dict[str, Any] = {}
        try:
            rows = list(
                GenerationJob.objects.filter(status__in=[JobStatus.PENDING, JobStatus.RUNNING])
                .values("status", "priority", "params__family")
                .annotate(n=Count("id"), first=Min("created_at"))
                .order_by()
            )
            rows += [
                {**row, "priority": "train", "params__family": None}
                for row in TrainingJob.objects.filter(
                    status__in=[TrainingStatus.PENDING, TrainingStatus.RUNNING]
                )
                .values("status")
                .annotate(n=Count("id"), first=Min("created_at"))
                .order_by()
            ]
        except DatabaseError:
            logger.warning("metrics: the queue depth could not be read", exc_info=True)
            return
        for row in rows:
            queue = queue_name(priority=row["priority"], lane=lane_of(row["params__family"]))
            if row["status"] == "running":
                running[queue] += row["n"]
                continue
            waiting[queue] += row["n"]
            if queue not in oldest or row["first"] < oldest[queue]:
                oldest[queue] = row["first"]
        queues = sorted(set(SHARED_QUEUES) | set(waiting) | set(running))
        now = timezone.now()
        depth = GaugeMetricFamily(
            "easel_queue_depth", "Jobs waiting to be claimed, per queue.", labels=["queue"]
        )
        busy = GaugeMetricFamily(
            "easel_queue_running", "Jobs running, per queue.", labels=["queue"]
        )
        age = GaugeMetricFamily(
            "easel_queue_oldest_waiting_seconds",
            "Age of the oldest job waiting, per queue (0 when none waits).",
            labels=["queue"],
        )
        for queue in queues:
            depth.add_metric([queue], waiting.get(queue, 0))
            busy.add_metric([queue], running.get(queue, 0))
            first = oldest.get(queue)
            age.add_metric([queue], (now - first).total_seconds() if first else 0.0)
        yield from (depth, busy, age)


class _Page:
    """Several collectors as one, for ``generate_latest``."""

    def __init__(self, *sources: Any) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        for source in self.sources:
            yield from source.collect()


def process_registry() -> Any:
    """This process's series, or every local process's in multiprocess mode."""
    if not settings.PROMETHEUS_MULTIPROC_DIR:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=settings.PROMETHEUS_MULTIPROC_DIR)
    return registry


def _allowed(request: HttpRequest) -> bool:
    return is_staff(request) or bearer_token_matches(request, settings.EASEL_METRICS_TOKEN)


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        message = (
            "Metrics are for operators: sign in as staff or send "
            "'Authorization: Bearer <EASEL_METRICS_TOKEN>'."
        )
        return JsonResponse(
            {"error": {"code": "permission_denied", "message": message, "fields": {}}},
            status=403,
        )
    page = generate_latest(_Page(process_registry(), QueueDepthCollector()))  # type: ignore[arg-type]
    return HttpResponse(page, content_type=CONTENT_TYPE_LATEST)


def worker_metrics_serve() -> None:
    """Serve this worker process's series on ``EASEL_WORKER_METRICS_PORT`` (0: do nothing)."""
    from prometheus_client import start_http_server

    port = int(settings.EASEL_WORKER_METRICS_PORT)
    if not port:
        return
    start_http_server(port, addr=settings.EASEL_WORKER_METRICS_ADDR, registry=process_registry())
    logger.info("worker metrics on http://%s:%d/metrics", settings.EASEL_WORKER_METRICS_ADDR, port)
