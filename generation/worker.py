"""The GPU worker's work for one task: choose a job fairly, gather compatible batch-mates, run them
in one pipeline call, store the images, finish every job of the batch.

Claiming. ``claim_job`` moves a job ``pending → running`` through ``job_transition`` (a conditional
update: a redelivered or duplicate message finds the job no longer pending and does nothing). The
worker then claims, the same way, up to ``EASEL_BATCH_SIZE`` images' worth of other pending jobs
with the same ``batch_key`` (same model reference and resolved version, size, steps, scheduler, cfg
scale — one diffusers call takes one guidance scale) and priority, taken from each organization in
turn; their own messages arrive later and return at once.

Fair share. A message is a signal that there is work, not an order to run its own job first: the
task runs the job ``next_job_id`` picks — interactive before bulk, and within a priority the oldest
job of the organization that has the fewest images running now and was served least recently — and
goes on until its own job has been taken (by it or another worker), then keeps draining for up to
``EASEL_WORKER_DRAIN_SECONDS``. One organization's backlog of a thousand bulk images therefore
takes turns with everyone else's bulk work instead of delaying it. A job waiting out a retry
backoff is left alone until its delayed message comes.

Failure isolation. A batch may hold several organizations' jobs. When its pipeline call raises,
the batch is split in halves and each half run again, down to single jobs, so only the job at fault
fails and every error message is the failing job's own. Out of memory retries the same way, and a
lone job that still does not fit makes its images in smaller calls.

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
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import F, Max, Min, Sum
from django.utils import timezone

from . import storage
from .models import GeneratedImage, GenerationJob, JobPriority, JobStatus
from .transitions import job_transition

logger = logging.getLogger(__name__)

# How far back "served least recently" looks; older service counts as never.
FAIR_SHARE_WINDOW = timedelta(hours=6)

# --- choosing and claiming -----------------------------------------------------------------------


def claim_job(*, job_id: object) -> GenerationJob | None:
    """Move one pending job to running; ``None`` unless this call made the change."""
    now = timezone.now()
    return job_transition(
        job_id=job_id,
        from_status=JobStatus.PENDING,
        to_status=JobStatus.RUNNING,
        attempts=F("attempts") + 1,
        started_at=now,
        lease_expires_at=now + timedelta(seconds=settings.EASEL_JOB_LEASE_SECONDS),
        progress=0.0,
    )


def next_job_id(priorities: Sequence[str]) -> Any:
    """The job to run next: the first priority with runnable work, and in it the oldest job of the
    organization with the fewest images running now, then the one served least recently."""
    for priority in priorities:
        # attempts=0: a job waiting out its retry backoff runs when its delayed message says.
        runnable = GenerationJob.objects.filter(
            status=JobStatus.PENDING, priority=priority, attempts=0
        )
        oldest = dict(
            runnable.order_by()
            .values("organization_id")
            .annotate(oldest=Min("created_at"))
            .values_list("organization_id", "oldest")
        )
        if not oldest:
            continue
        org_id = min(oldest, key=_fair_order(priority, oldest))
        return (
            runnable.filter(organization_id=org_id)
            .order_by("created_at")
            .values_list("id", flat=True)
            .first()
        )
    return None


def _fair_order(priority: str, oldest: dict[int, datetime]) -> Any:
    org_ids = list(oldest)
    running = dict(
        GenerationJob.objects.filter(status=JobStatus.RUNNING, organization_id__in=org_ids)
        .order_by()
        .values("organization_id")
        .annotate(images=Sum("num_images"))
        .values_list("organization_id", "images")
    )
    served = dict(
        GenerationJob.objects.filter(
            organization_id__in=org_ids,
            priority=priority,
            started_at__gte=timezone.now() - FAIR_SHARE_WINDOW,
        )
        .order_by()
        .values("organization_id")
        .annotate(last=Max("started_at"))
        .values_list("organization_id", "last")
    )
    never = datetime.min.replace(tzinfo=timezone.get_current_timezone())
    return lambda org_id: (running.get(org_id, 0), served.get(org_id) or never, oldest[org_id])


def claim_batch_mates(*, leader: GenerationJob, max_images: int) -> list[GenerationJob]:
    """Claim pending jobs that can share ``leader``'s pipeline call: the oldest of each
    organization in turn, so a full batch is shared too."""
    budget = max_images - leader.num_images
    if budget <= 0 or leader.backend != "local":
        return []
    candidates = (
        GenerationJob.objects.filter(
            status=JobStatus.PENDING,
            priority=leader.priority,
            batch_key=leader.batch_key,
            backend="local",
            attempts=0,
            num_images__lte=budget,
        )
        .exclude(id=leader.id)
        .order_by("created_at")
        .values_list("id", "num_images", "organization_id")[: budget * 4]
    )
    per_org: dict[int, list[tuple[Any, int]]] = defaultdict(list)
    for job_id, num_images, org_id in candidates:
        per_org[org_id].append((job_id, num_images))
    turns = [per_org.pop(leader.organization_id, [])] + list(per_org.values())
    in_turn = [row for rows in _interleave(turns) for row in rows]
    mates: list[GenerationJob] = []
    for job_id, num_images in in_turn:
        if num_images > budget:
            continue
        mate = claim_job(job_id=job_id)
        if mate is not None:
            mates.append(mate)
            budget -= mate.num_images
        if budget <= 0:
            break
    return mates


def _interleave(queues: list[list[Any]]) -> Iterator[list[Any]]:
    """One item of each queue in turn: [[a1, a2], [b1]] → [a1], [b1], [a2]."""
    depth = max((len(q) for q in queues), default=0)
    for i in range(depth):
        yield [q[i] for q in queues if i < len(q)]


# --- one task ------------------------------------------------------------------------------------


def generation_run(*, job_id: object) -> list[GenerationJob]:
    """Run fair batches until the job ``job_id`` has been taken, then keep draining pending work
    for up to ``EASEL_WORKER_DRAIN_SECONDS``. Returns the jobs this call ran (maybe none).

    An interactive task runs interactive jobs only; a bulk task runs pending interactive jobs
    first, then bulk ones. A job on a retry (``attempts > 0``) is run at once: its message was
    delayed by the backoff and says now.
    """
    job = GenerationJob.objects.filter(id=job_id).only("status", "priority", "attempts").first()
    if job is None or job.status != JobStatus.PENDING:
        return []
    deadline = time.monotonic() + float(settings.EASEL_WORKER_DRAIN_SECONDS)
    priorities = [JobPriority.INTERACTIVE]
    if job.priority == JobPriority.BULK:
        priorities.append(JobPriority.BULK)
    ran: list[GenerationJob] = []
    if job.attempts > 0:
        ran += _run_from(job_id)
    lost_race = None
    while _still_waiting(job_id, attempts=job.attempts) or time.monotonic() < deadline:
        next_id = next_job_id(priorities)
        if next_id is None or next_id == lost_race:
            break
        batch = _run_from(next_id)
        lost_race = None if batch else next_id  # another worker claimed it between pick and claim
        ran += batch
    return ran


def _still_waiting(job_id: object, *, attempts: int) -> bool:
    return GenerationJob.objects.filter(
        id=job_id, status=JobStatus.PENDING, attempts=attempts
    ).exists()


def _run_from(job_id: object) -> list[GenerationJob]:
    leader = claim_job(job_id=job_id)
    if leader is None:
        return []
    return run_claimed_batch([leader, *claim_batch_mates(leader=leader, max_images=_batch_size())])


def _batch_size() -> int:
    return max(1, int(settings.EASEL_BATCH_SIZE))


def run_claimed_batch(jobs: Sequence[GenerationJob]) -> list[GenerationJob]:
    """Run already-claimed jobs that share a batch key; finish each of them one way or another.

    A failing call is split in halves until the job at fault runs alone, so that only it fails and
    only with its own error.
    """
    from .engine.inference import InferenceCanceled

    try:
        outputs, seconds = _generate(jobs)
    except InferenceCanceled:
        for job in jobs:
            _finish_canceled(job)
        return list(jobs)
    except Exception as exc:
        if len(jobs) > 1:
            logger.warning(
                "a batch of %d jobs failed (%s); running it in halves to isolate the job at fault",
                len(jobs),
                type(exc).__name__,
            )
            _release_accelerator_memory(exc)
            half = len(jobs) // 2
            return run_claimed_batch(jobs[:half]) + run_claimed_batch(jobs[half:])
        return _run_alone_after_failure(jobs[0], exc)
    _finish_batch(jobs, outputs, seconds)
    return list(jobs)


def _run_alone_after_failure(job: GenerationJob, exc: BaseException) -> list[GenerationJob]:
    """A lone job whose call failed: if it ran out of memory, make its images in smaller calls;
    otherwise (or when one image at a time does not fit either) fail or retry it."""
    from .engine.inference import InferenceCanceled

    per_call = job.num_images
    while is_out_of_memory(exc) and per_call > 1 and job.backend == "local":
        _release_accelerator_memory(exc)
        per_call = (per_call + 1) // 2
        logger.warning("job %s ran out of memory; retrying %d image(s) a call", job.id, per_call)
        try:
            outputs, seconds = _generate([job], images_per_call=per_call)
        except InferenceCanceled:
            _finish_canceled(job)
            return [job]
        except Exception as again:
            exc = again
            continue
        _finish_batch([job], outputs, seconds, images_per_call=per_call)
        return [job]
    logger.error("generation job %s failed", job.id, exc_info=exc)
    _fail_or_retry(job, exc)
    return [job]


def _finish_batch(
    jobs: Sequence[GenerationJob],
    outputs: dict[Any, list[_Output]],
    seconds: float,
    *,
    images_per_call: int | None = None,
) -> None:
    total_images = sum(job.num_images for job in jobs) or 1
    batch_images = min(images_per_call or total_images, total_images)
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
            _store_and_succeed(job, outputs[job.id], gpu_seconds=share, batch_images=batch_images)
        except Exception as exc:
            logger.exception("storing the images of job %s failed", job.id)
            _fail_or_retry(job, exc)


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's ``OutOfMemoryError``, Python's ``MemoryError``, or an allocator's out-of-memory
    ``RuntimeError`` (CPU, MPS)."""
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def _release_accelerator_memory(exc: BaseException) -> None:
    torch = sys.modules.get("torch")
    if is_out_of_memory(exc) and torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


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


def _generate(
    jobs: Sequence[GenerationJob], *, images_per_call: int | None = None
) -> tuple[dict[Any, list[_Output]], float]:
    """Every image of ``jobs``: (images by job id, seconds spent in pipeline calls)."""
    if jobs[0].backend == "local":
        return _run_local(jobs, images_per_call=images_per_call)
    return _run_hosted(jobs[0]), 0.0


def _run_local(
    jobs: Sequence[GenerationJob], *, images_per_call: int | None = None
) -> tuple[dict[Any, list[_Output]], float]:
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
    per_call = images_per_call or len(specs)
    watch = _StepWatch(jobs)
    images: list[Any] = []
    seconds = 0.0
    with _pipeline_for(leader) as pipe:
        for start in range(0, len(specs), per_call):
            spec = BatchSpec(
                width=int(p["width"]),
                height=int(p["height"]),
                steps=int(p["steps"]),
                cfg_scale=float(p["cfg_scale"]),
                scheduler_class=_scheduler_class(p.get("scheduler")),
                images=specs[start : start + per_call],
            )
            result = run_batch(pipe, spec, on_step=watch)
            images += result.images
            seconds += result.seconds
    outputs: dict[Any, list[_Output]] = {job.id: [] for job in jobs}
    for owner, image_spec, image in zip(owners, specs, images, strict=True):
        outputs[owner].append(_Output(seed=image_spec.seed, image=image))
    return outputs, seconds


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
    try:
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
            storage.write_object(key, data)
            storage.write_object(thumb, storage.encode_thumbnail(image))
    except Exception:
        _delete_objects(written)
        raise
    stale_keys: list[str] = []

    def record_images(finished: GenerationJob) -> None:
        stale = GeneratedImage.objects.filter(job=finished).exclude(attempt=finished.attempts)
        for row in stale:
            stale_keys.extend([row.storage_key, row.thumbnail_key])
        stale.delete()
        for row in written:
            GeneratedImage.objects.update_or_create(
                job=finished,
                index=row["index"],
                attempt=finished.attempts,
                defaults={
                    "organization_id": finished.organization_id,
                    **{k: v for k, v in row.items() if k != "index"},
                },
            )

    finished = job_transition(
        job_id=job.id,
        from_status=JobStatus.RUNNING,
        to_status=JobStatus.SUCCEEDED,
        on_attempt=job.attempts,
        before_effects=record_images,
        progress=1.0,
        gpu_seconds=gpu_seconds,
        batch_size=batch_images,
        error_code="",
        error_message="",
    )
    if finished is None:
        # Canceled, or reaped and re-claimed while we ran: the current owner decides.
        logger.warning("job %s changed hands during its run; its output is dropped", job.id)
        _delete_objects(written)
        return
    for key in stale_keys:
        with contextlib.suppress(OSError):
            storage.delete_object(key)


def _delete_objects(written: list[dict[str, Any]]) -> None:
    for row in written:
        for key in (row["storage_key"], row["thumbnail_key"]):
            with contextlib.suppress(OSError):
                storage.delete_object(key)


def _finish_canceled(job: GenerationJob) -> None:
    job_transition(job_id=job.id, from_status=JobStatus.RUNNING, to_status=JobStatus.CANCELED)


def actionable_error(job: GenerationJob, exc: BaseException) -> tuple[str, str, bool]:
    """(code, message a person can act on, whether retrying may help) for the job's own error."""
    from models_registry.artifacts import ArtifactError

    from .engine.providers.base import ProviderError

    p = job.params
    if isinstance(exc, ValidationError):
        return "invalid_model", "; ".join(exc.messages), False
    if is_out_of_memory(exc):
        return (
            "out_of_memory",
            f"The GPU ran out of memory making the {job.num_images} image(s) of this job at "
            f"{p.get('width')}×{p.get('height')}, even one image at a time. Ask for a smaller "
            "size or fewer steps.",
            False,
        )
    if isinstance(exc, ArtifactError):
        return (
            "model_unavailable",
            f"The model's weights could not be loaded ({exc}). Ask an admin to re-register the "
            "model version, or generate with another model.",
            False,
        )
    if isinstance(exc, ProviderError):
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
        f"Generation failed ({type(exc).__name__}: {exc}). Submit again; if it keeps failing, "
        f"report job {job.id} to your administrator.",
        True,
    )


def _fail_or_retry(job: GenerationJob, exc: BaseException) -> None:
    code, message, retryable = actionable_error(job, exc)
    if retryable and job.attempts < job.max_attempts and not job.cancel_requested:
        retried = job_transition(
            job_id=job.id,
            from_status=JobStatus.RUNNING,
            to_status=JobStatus.PENDING,
            on_attempt=job.attempts,
            lease_expires_at=timezone.now()
            + timedelta(seconds=settings.EASEL_PENDING_RESEND_SECONDS),
            error_code=code,
            error_message=f"Attempt {job.attempts} failed: {message}",
        )
        if retried is not None:
            from .tasks import enqueue_generation

            enqueue_generation(job=retried, countdown=min(60, 5 * 2**job.attempts))
        return
    if job.attempts >= job.max_attempts and retryable:
        message = f"Failed after {job.attempts} attempts. {message}"
    job_transition(
        job_id=job.id,
        from_status=JobStatus.RUNNING,
        to_status=JobStatus.FAILED,
        on_attempt=job.attempts,
        error_code=code,
        error_message=message,
    )


def random_seed() -> int:
    return secrets.randbelow(2**32)
