"""The platform's own Prometheus series, all defined here (prometheus-client).

Recorded where the work happens: generation jobs by ``generation.metrics`` (from the one status
change, the finished batch and the warm pipeline), training steps by the train worker. Labels are
bounded: ``queue`` (a Celery queue name), ``model`` (a base model's or hosted provider's name,
never a tenant's version), ``status``, ``error_code``, ``kind``, ``mode``.

Exposed two ways (config/metrics.py, config/celery_app.py): every Celery worker process serves its
own on ``EASEL_WORKER_METRICS_PORT``, and ``/metrics`` on the web serves the web's (with
``PROMETHEUS_MULTIPROC_DIR``, every local process's), its django-prometheus request series and the
queue depth read from the database at scrape time.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

JOB = ("queue", "model")

# Seconds, from an interactive job's second to a backed-up bulk queue's hour.
WAIT_BUCKETS = (0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600)
RUN_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800)

JOBS_STARTED = Counter(
    "easel_generation_jobs_started", "Generation job attempts claimed by a GPU worker.", JOB
)
JOBS_FINISHED = Counter(
    "easel_generation_jobs_finished",
    "Generation jobs that ended, by final status (succeeded, failed, failed_quality, canceled).",
    (*JOB, "status"),
)
JOBS_FAILED = Counter(
    "easel_generation_jobs_failed",
    "Generation jobs that ended failed, by error code.",
    (*JOB, "error_code"),
)
JOBS_RETRIED = Counter(
    "easel_generation_jobs_retried",
    "Attempts sent back to pending: a retryable error, a lost lease, or a refined prompt.",
    JOB,
)
QUEUE_WAIT = Histogram(
    "easel_generation_queue_wait_seconds",
    "From a job's submission to its first claim by a worker.",
    JOB,
    buckets=WAIT_BUCKETS,
)
JOB_DURATION = Histogram(
    "easel_generation_job_duration_seconds",
    "From a job's last claim to its end (load, inference, storing, judging).",
    JOB,
    buckets=RUN_BUCKETS,
)
IMAGES = Counter("easel_generation_images", "Images made by pipeline calls or hosted models.", JOB)
GPU_SECONDS = Counter(
    "easel_generation_gpu_seconds", "Seconds spent in pipeline calls (what quotas charge).", JOB
)
PIPELINE_CACHE_HITS = Counter(
    "easel_pipeline_cache_hits", "Batches that found their base pipeline warm in the worker."
)
PIPELINE_CACHE_MISSES = Counter(
    "easel_pipeline_cache_misses", "Batches that had to load their base pipeline first."
)
PIPELINE_CACHE_EVICTIONS = Counter(
    "easel_pipeline_cache_evictions", "Warm pipelines dropped to make room for another."
)
PIPELINE_LOAD_SECONDS = Counter(
    "easel_pipeline_load_seconds", "Seconds spent loading pipelines into the worker."
)
ADAPTER_SWAPS = Counter(
    "easel_adapter_swaps",
    "LoRA adapters made active on a warm base: kind=load (weights loaded or hot-swapped in), "
    "kind=switch (already resident).",
    ("model", "kind"),
)
TRAINING_STEPS = Counter("easel_training_steps", "Fine-tuning optimizer steps run.", ("mode",))
