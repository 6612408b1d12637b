"""Recording the generation series (defined in ``tenants.metrics``) from what the worker does:
status changes (``transitions.job_transition``, after commit), finished batches
(``finishing.finish_batch``) and the warm pipeline (``running``). Labels come from the job: its
queue (``queues.job_queue``) and its base model's name (a hosted provider's for hosted jobs).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from tenants import metrics

from .models import GenerationJob, JobStatus
from .models.jobs import FINISHED_STATUSES
from .queues import job_queue


def job_labels(job: GenerationJob) -> dict[str, str]:
    model = job.base_model.name if job.base_model_id else job.backend
    return {"queue": job_queue(job), "model": model}


def job_transitioned(job: GenerationJob, *, from_status: str, to_status: str) -> None:
    labels = job_labels(job)
    if to_status == JobStatus.RUNNING:
        metrics.JOBS_STARTED.labels(**labels).inc()
        if job.attempts == 1 and job.started_at:
            wait = (job.started_at - job.created_at).total_seconds()
            metrics.QUEUE_WAIT.labels(**labels).observe(max(wait, 0.0))
    elif to_status == JobStatus.PENDING:
        metrics.JOBS_RETRIED.labels(**labels).inc()
    elif to_status in FINISHED_STATUSES:
        metrics.JOBS_FINISHED.labels(**labels, status=to_status).inc()
        if to_status == JobStatus.FAILED:
            metrics.JOBS_FAILED.labels(**labels, error_code=job.error_code or "unknown").inc()
        if from_status != JobStatus.PENDING and job.started_at and job.finished_at:
            run = (job.finished_at - job.started_at).total_seconds()
            metrics.JOB_DURATION.labels(**labels).observe(max(run, 0.0))


def batch_made(
    jobs: Sequence[GenerationJob], outputs: dict[Any, list[Any]], seconds: float
) -> None:
    """A pipeline call (or hosted request) made ``outputs`` in ``seconds``, shared by image."""
    total = sum(len(outputs.get(job.id, [])) for job in jobs) or 1
    for job in jobs:
        made = len(outputs.get(job.id, []))
        labels = job_labels(job)
        metrics.IMAGES.labels(**labels).inc(made)
        metrics.GPU_SECONDS.labels(**labels).inc(seconds * made / total)


_seen: dict[str, float] = {"hits": 0, "misses": 0, "evictions": 0, "load_seconds": 0.0}
_seen_lock = threading.Lock()


def pipeline_cache_sync() -> None:
    """Add what the process's pipeline cache counted since the last call to the counters."""
    from .engine.cache import default_cache

    stats = default_cache().stats
    counters = {
        "hits": metrics.PIPELINE_CACHE_HITS,
        "misses": metrics.PIPELINE_CACHE_MISSES,
        "evictions": metrics.PIPELINE_CACHE_EVICTIONS,
        "load_seconds": metrics.PIPELINE_LOAD_SECONDS,
    }
    with _seen_lock:
        for name, counter in counters.items():
            now = float(getattr(stats, name))
            if now > _seen[name]:
                counter.inc(now - _seen[name])
            _seen[name] = now


def adapter_activated(pipe: Any, *, adapter_name: str, job: GenerationJob) -> None:
    """Called before ``use_adapter`` makes ``adapter_name`` active on ``pipe``: counts a swap when
    the pipeline had another adapter (or none) active."""
    from .engine.adapters import adapter_state

    state = adapter_state(pipe)
    if state.active == adapter_name:
        return
    kind = "switch" if adapter_name in state.slots else "load"
    metrics.ADAPTER_SWAPS.labels(model=job_labels(job)["model"], kind=kind).inc()
