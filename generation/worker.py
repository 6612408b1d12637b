"""The GPU worker's work for one task: claim a job, gather compatible batch-mates, run them in one
pipeline call, store the images, finish every job of the batch.

Claiming. A task carries a job id. ``claim_job`` moves that job ``pending → running`` with a
conditional update and acts only if exactly one row changed, so a redelivered or duplicate message
finds the job no longer pending and returns. The worker then claims, the same way, up to
``EASEL_BATCH_SIZE`` images' worth of other pending jobs with the same ``batch_key`` (same model
reference and resolved version, size, steps, scheduler, cfg scale — one diffusers call takes one
guidance scale) and priority; their own messages arrive later and return at once.

Interactive first. Before a bulk job is claimed, pending interactive jobs are run, so even a
worker that serves both queues never makes interactive work wait behind a bulk backlog. After its
own job a task keeps draining pending jobs of its priority (interactive first) for up to
``EASEL_WORKER_DRAIN_SECONDS``, so a busy worker does not idle between messages.

Cancel in a batch. The step callback stops the pipeline call only when every job of the batch has
asked to be canceled; otherwise the call finishes and the canceled jobs' images are dropped (they
are not stored, their quota reservation is released), so one person's cancel never costs the
others their images.

torch/diffusers are imported inside functions only (the web process imports this module's callers).
"""

from __future__ import annotations

import contextlib
import io
import logging
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import storage
from .models import GeneratedImage, GenerationJob, JobPriority, JobStatus
from .services import job_finished_emit, job_quota_release, job_quota_settle

logger = logging.getLogger(__name__)

# Pending interactive batches a bulk task runs before its own job.
INTERACTIVE_FIRST_LIMIT = 32

# --- claiming ------------------------------------------------------------------------------------


def claim_job(*, job_id: object) -> GenerationJob | None:
    """Move one pending job to running; ``None`` unless this call made the change."""
    now = timezone.now()
    changed = GenerationJob.objects.filter(id=job_id, status=JobStatus.PENDING).update(
        status=JobStatus.RUNNING,
        attempts=F("attempts") + 1,
        started_at=now,
        lease_expires_at=now + timedelta(seconds=settings.EASEL_JOB_LEASE_SECONDS),
        progress=0.0,
    )
    if changed != 1:
        return None
    return GenerationJob.objects.select_related(
        "organization", "team", "base_model", "model_version", "category"
    ).get(id=job_id)


def claim_batch_mates(*, leader: GenerationJob, max_images: int) -> list[GenerationJob]:
    """Claim pending jobs that can share ``leader``'s pipeline call, oldest first."""
    budget = max_images - leader.num_images
    if budget <= 0 or leader.backend != "local":
        return []
    candidates = (
        GenerationJob.objects.filter(
            status=JobStatus.PENDING,
            priority=leader.priority,
            batch_key=leader.batch_key,
            backend="local",
            num_images__lte=budget,
        )
        .exclude(id=leader.id)
        .order_by("created_at")
        .values_list("id", "num_images")[: budget * 2]
    )
    mates: list[GenerationJob] = []
    for job_id, num_images in candidates:
        if num_images > budget:
            continue
        mate = claim_job(job_id=job_id)
        if mate is not None:
            mates.append(mate)
            budget -= mate.num_images
        if budget <= 0:
            break
    return mates


# --- one task ------------------------------------------------------------------------------------


def generation_run(*, job_id: object) -> list[GenerationJob]:
    """Run the job ``job_id`` (with batch-mates), then keep draining pending work.

    After its own job the task goes on claiming the oldest pending jobs of its priority
    (interactive ones first) for up to ``EASEL_WORKER_DRAIN_SECONDS``: a busy worker moves from
    one batch to the next without waiting for the broker to deliver the next message, and those
    messages, when they come, find their jobs taken and return at once. Returns the jobs this call
    ran (maybe none).
    """
    ran: list[GenerationJob] = []
    job = GenerationJob.objects.filter(id=job_id).only("status", "priority").first()
    if job is None or job.status != JobStatus.PENDING:
        return ran
    deadline = time.monotonic() + float(settings.EASEL_WORKER_DRAIN_SECONDS)
    if job.priority == JobPriority.BULK:
        ran += _drain([JobPriority.INTERACTIVE], limit=INTERACTIVE_FIRST_LIMIT)
    leader = claim_job(job_id=job_id)
    if leader is not None:
        ran += run_claimed_batch(
            [leader, *claim_batch_mates(leader=leader, max_images=_batch_size())]
        )
    priorities = [JobPriority.INTERACTIVE]
    if job.priority == JobPriority.BULK:
        priorities.append(JobPriority.BULK)
    return ran + _drain(priorities, deadline=deadline)


def _drain(
    priorities: Sequence[str], *, deadline: float | None = None, limit: int | None = None
) -> list[GenerationJob]:
    """Run pending jobs, highest priority and oldest first, until none is left, ``deadline``
    (monotonic) has passed or ``limit`` batches have run."""
    ran: list[GenerationJob] = []
    batches = 0
    while (deadline is None or time.monotonic() < deadline) and (limit is None or batches < limit):
        batches += 1
        next_id = None
        for priority in priorities:
            # attempts=0: a job waiting out its retry backoff runs when its delayed message says.
            next_id = (
                GenerationJob.objects.filter(
                    status=JobStatus.PENDING, priority=priority, attempts=0
                )
                .order_by("created_at")
                .values_list("id", flat=True)
                .first()
            )
            if next_id is not None:
                break
        if next_id is None:
            break
        leader = claim_job(job_id=next_id)
        if leader is not None:
            mates = claim_batch_mates(leader=leader, max_images=_batch_size())
            ran += run_claimed_batch([leader, *mates])
    return ran


def _batch_size() -> int:
    return max(1, int(settings.EASEL_BATCH_SIZE))


def run_claimed_batch(jobs: Sequence[GenerationJob]) -> list[GenerationJob]:
    """Run already-claimed jobs that share a batch key; finish each of them one way or another."""
    leader = jobs[0]
    try:
        if leader.backend == "local":
            outputs, seconds = _run_local(jobs)
        else:
            outputs, seconds = _run_hosted(leader), 0.0
    except Exception as exc:
        if type(exc).__name__ == "InferenceCanceled":
            for job in jobs:
                _finish_canceled(job)
            return list(jobs)
        logger.exception("generation batch of %d job(s) failed", len(jobs))
        for job in jobs:
            _fail_or_retry(job, exc)
        return list(jobs)
    total_images = sum(job.num_images for job in jobs) or 1
    canceled = set(
        GenerationJob.objects.filter(
            id__in=[j.id for j in jobs], cancel_requested=True
        ).values_list("id", flat=True)
    )
    for job in jobs:
        if job.id in canceled:
            _finish_canceled(job)
            continue
        share = seconds * job.num_images / total_images
        try:
            _store_and_succeed(job, outputs[job.id], gpu_seconds=share, batch_images=total_images)
        except Exception as exc:
            logger.exception("storing the images of job %s failed", job.id)
            _fail_or_retry(job, exc)
    return list(jobs)


# --- running -------------------------------------------------------------------------------------


@dataclass
class _Output:
    """One produced image: PNG-ready PIL image (or PNG bytes from a hosted backend) + its seed."""

    seed: int
    image: Any = None
    png_bytes: bytes | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _seeds(job: GenerationJob) -> list[int]:
    base = int(job.params.get("seed") or 0)
    return [(base + i) % 2**32 for i in range(job.num_images)]


def _run_local(jobs: Sequence[GenerationJob]) -> tuple[dict[Any, list[_Output]], float]:
    from .engine.inference import BatchSpec, ImageSpec, run_batch

    leader = jobs[0]
    p = leader.params
    specs: list[ImageSpec] = []
    owners: list[Any] = []
    for job in jobs:
        for seed in _seeds(job):
            specs.append(
                ImageSpec(
                    prompt=job.prompt,
                    negative_prompt=job.params.get("negative_prompt") or "",
                    seed=seed,
                )
            )
            owners.append(job.id)
    spec = BatchSpec(
        width=int(p["width"]),
        height=int(p["height"]),
        steps=int(p["steps"]),
        cfg_scale=float(p["cfg_scale"]),
        scheduler_class=_scheduler_class(p.get("scheduler")),
        images=specs,
    )
    watch = _StepWatch(jobs)
    with _pipeline_for(leader) as pipe:
        result = run_batch(pipe, spec, on_step=watch)
    outputs: dict[Any, list[_Output]] = {job.id: [] for job in jobs}
    for owner, image_spec, image in zip(owners, specs, result.images, strict=True):
        outputs[owner].append(_Output(seed=image_spec.seed, image=image))
    return outputs, result.seconds


def _scheduler_class(name: str | None) -> str | None:
    if not name:
        return None
    from .protocol import scheduler_class_name

    return scheduler_class_name(name)


@contextlib.contextmanager
def _pipeline_for(job: GenerationJob) -> Iterator[Any]:
    """The warm pipeline from the per-process cache, with the job's LoRA (or none) active.

    A full version is its own pipeline; a LoRA version is swapped in on the warm base; a base
    model turns off whatever adapter the previous batch left active.
    """
    from models_registry.artifacts import materialize_base, materialize_version
    from models_registry.models import VersionKind

    from .engine.adapters import use_adapter
    from .engine.cache import default_cache
    from .engine.device import select_device, select_dtype

    device = select_device(settings.EASEL_DEVICE)
    dtype = select_dtype(device)
    cache = default_cache(settings.EASEL_PIPELINE_CACHE_SIZE)
    version = job.model_version
    if version is not None and version.kind == VersionKind.FULL:
        yield cache.get(materialize_version(version), device=device, dtype=dtype)
        return
    pipe = cache.get(materialize_base(job.base_model), device=device, dtype=dtype)
    if version is None:
        use_adapter(pipe, lora_path=None, adapter_name=None)
    else:
        use_adapter(pipe, lora_path=materialize_version(version), adapter_name=f"v{version.pk}")
    yield pipe


def _run_hosted(job: GenerationJob) -> dict[Any, list[_Output]]:
    """A hosted provider's images for one job (never batched: one request per job)."""
    from .backends import backend_for, provider_target, render_request_for
    from .protocol import GenerationParams

    target = provider_target(job.backend)
    if target is None:
        raise ValueError(
            f"The hosted model '{job.backend}' is no longer configured (EASEL_PROVIDERS)."
        )
    request = render_request_for(GenerationParams.from_dict(job.params))
    images = backend_for(target).generate(request)
    return {
        job.id: [
            _Output(seed=img.seed, png_bytes=img.png_bytes, meta=dict(img.meta)) for img in images
        ]
    }


class _StepWatch:
    """Step callback: renew leases, report progress, stop when every job asked to cancel."""

    def __init__(self, jobs: Sequence[GenerationJob]) -> None:
        self.ids = [job.id for job in jobs]
        self.interval = float(settings.EASEL_CANCEL_POLL_SECONDS)
        self.last = float("-inf")

    def __call__(self, step: int, total: int) -> bool:
        now = time.monotonic()
        if now - self.last < self.interval:
            return False
        self.last = now
        GenerationJob.objects.filter(id__in=self.ids, status=JobStatus.RUNNING).update(
            progress=step / max(total, 1),
            lease_expires_at=timezone.now() + timedelta(seconds=settings.EASEL_JOB_LEASE_SECONDS),
        )
        canceled = GenerationJob.objects.filter(id__in=self.ids, cancel_requested=True).count()
        return canceled == len(self.ids)


# --- finishing -----------------------------------------------------------------------------------


def png_metadata(job: GenerationJob, *, seed: int, index: int) -> dict[str, Any]:
    """What a PNG carries about how it was made (readable by any PNG tool)."""
    version = job.model_version
    params = {**job.params, "seed": seed, "num_images": 1}
    return {
        "prompt": job.prompt,
        "negative_prompt": job.params.get("negative_prompt") or "",
        "seed": str(seed),
        "model": job.base_model.name if job.base_model else job.backend,
        "model_version": f"version:{version.pk}" if version else "",
        "template_version": "" if job.template_version is None else str(job.template_version),
        "parameters": params,
        "easel:job": str(job.id),
        "easel:image_index": str(index),
        "Software": "Easel",
    }


def _store_and_succeed(
    job: GenerationJob, outputs: list[_Output], *, gpu_seconds: float, batch_images: int
) -> None:
    from PIL import Image

    written: list[dict[str, Any]] = []
    for index, out in enumerate(outputs):
        image = out.image
        if image is None:
            image = Image.open(io.BytesIO(out.png_bytes), formats=["PNG", "JPEG"])
            image.load()
        data = storage.encode_png(image, png_metadata(job, seed=out.seed, index=index))
        key = storage.image_key(
            org_id=job.organization_id, job_id=job.id, index=index, attempt=job.attempts
        )
        thumb = storage.thumbnail_key(
            org_id=job.organization_id, job_id=job.id, index=index, attempt=job.attempts
        )
        storage.write_object(key, data)
        storage.write_object(thumb, storage.encode_thumbnail(image))
        written.append(
            {
                "index": index,
                "seed": out.seed,
                "storage_key": key,
                "thumbnail_key": thumb,
                "sha256": storage.sha256_hex(data),
                "size_bytes": len(data),
                "width": image.width,
                "height": image.height,
            }
        )
    stale_keys: list[str] = []
    with transaction.atomic():
        now = timezone.now()
        changed = GenerationJob.objects.filter(
            id=job.id, status=JobStatus.RUNNING, attempts=job.attempts
        ).update(
            status=JobStatus.SUCCEEDED,
            finished_at=now,
            progress=1.0,
            lease_expires_at=None,
            gpu_seconds=gpu_seconds,
            batch_size=batch_images,
            error_code="",
            error_message="",
        )
        if changed != 1:
            # Canceled, or reaped and re-claimed while we ran: the current owner decides.
            logger.warning("job %s changed hands during its run; its output is dropped", job.id)
            return
        stale = GeneratedImage.objects.filter(job=job).exclude(attempt=job.attempts)
        for row in stale:
            stale_keys += [row.storage_key, row.thumbnail_key]
        stale.delete()
        for row in written:
            GeneratedImage.objects.update_or_create(
                job=job,
                index=row.pop("index"),
                attempt=job.attempts,
                defaults={"organization_id": job.organization_id, **row},
            )
        job.refresh_from_db()
        job_quota_settle(job=job)
        job_finished_emit(job=job)
    for key in stale_keys:
        with contextlib.suppress(OSError):
            storage.delete_object(key)


def _finish_canceled(job: GenerationJob) -> None:
    with transaction.atomic():
        changed = GenerationJob.objects.filter(id=job.id, status=JobStatus.RUNNING).update(
            status=JobStatus.CANCELED, finished_at=timezone.now(), lease_expires_at=None
        )
        if changed == 1:
            job.refresh_from_db()
            job_quota_release(job=job)
            job_finished_emit(job=job)


def actionable_error(job: GenerationJob, exc: BaseException) -> tuple[str, str, bool]:
    """(code, message a person can act on, whether retrying may help)."""
    name = type(exc).__name__
    p = job.params
    if isinstance(exc, ValidationError):
        return "invalid_model", "; ".join(exc.messages), False
    if name == "OutOfMemoryError":
        return (
            "out_of_memory",
            f"The GPU ran out of memory making {job.num_images} image(s) at "
            f"{p.get('width')}×{p.get('height')}. Ask for fewer images or a smaller size.",
            False,
        )
    if name in {"ArtifactMissing", "ArtifactCorrupted", "ArtifactError"}:
        return (
            "model_unavailable",
            f"The model's weights could not be loaded ({exc}). Ask an admin to re-register the "
            "model version, or generate with another model.",
            False,
        )
    if name == "ProviderError":
        retryable = bool(getattr(exc, "retryable", False))
        return (
            "provider_error",
            f"The hosted model '{job.backend}' refused the request: {exc}."
            + (" It will be retried." if retryable else " Change the request and submit again."),
            retryable,
        )
    if isinstance(exc, ValueError):
        return "invalid_parameters", f"{exc} Change the request and submit again.", False
    return (
        "worker_error",
        f"Generation failed ({name}: {exc}). Submit again; if it keeps failing, report job "
        f"{job.id} to your administrator.",
        True,
    )


def _fail_or_retry(job: GenerationJob, exc: BaseException) -> None:
    code, message, retryable = actionable_error(job, exc)
    with transaction.atomic():
        base = GenerationJob.objects.filter(
            id=job.id, status=JobStatus.RUNNING, attempts=job.attempts
        )
        if retryable and job.attempts < job.max_attempts and not job.cancel_requested:
            if base.update(
                status=JobStatus.PENDING,
                lease_expires_at=timezone.now()
                + timedelta(seconds=settings.EASEL_PENDING_RESEND_SECONDS),
                error_code=code,
                error_message=f"Attempt {job.attempts} failed: {message}",
            ):
                from .tasks import enqueue_generation

                enqueue_generation(job=job, countdown=min(60, 5 * 2**job.attempts))
            return
        if job.attempts >= job.max_attempts and retryable:
            message = f"Failed after {job.attempts} attempts. {message}"
        if base.update(
            status=JobStatus.FAILED,
            finished_at=timezone.now(),
            lease_expires_at=None,
            error_code=code,
            error_message=message,
        ):
            job.refresh_from_db()
            job_quota_release(job=job)
            job_finished_emit(job=job)


def random_seed() -> int:
    return secrets.randbelow(2**32)
