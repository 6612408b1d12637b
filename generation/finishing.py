"""Finishing a job after its pipeline call: store and judge its images (then ``outcomes``
decides), drop a canceled job's images, or fail (or retry) it with an error a person can act on.
Every status change goes through ``job_transition``. Each object is recorded as a
``PendingObject`` before it is written and the row is deleted with the transaction that records
its image, so an object whose attempt never finishes — deleted here when possible, otherwise by
``storage_leftovers_collect`` after a crash or a storage outage — is never left behind.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from . import metrics, outcomes, quality, storage
from .engine.quality.judges import JudgedImage
from .models import GeneratedImage, GenerationJob, JobStatus
from .running import Output, is_out_of_memory
from .transitions import job_transition

logger = logging.getLogger(__name__)


def finish_batch(
    jobs: Sequence[GenerationJob],
    outputs: dict[Any, list[Output]],
    seconds: float,
    *,
    images_per_call: int | None = None,
) -> None:
    """Finish every job of a call that produced ``outputs``: canceled ones drop their images, the
    others store them and succeed, each charged its share of ``seconds`` (a storage error fails or
    retries only that job)."""
    metrics.batch_made(jobs, outputs, seconds)
    total_images = sum(job.num_images for job in jobs) or 1
    batch_images = min(images_per_call or total_images, total_images)
    canceled = set(
        GenerationJob.objects.filter(
            id__in=[j.id for j in jobs], cancel_requested=True
        ).values_list("id", flat=True)
    )
    for job in jobs:
        if job.id in canceled:
            finish_canceled(job)
            continue
        share = seconds * job.num_images / total_images
        try:
            store_and_succeed(job, outputs[job.id], gpu_seconds=share, batch_images=batch_images)
        except Exception as exc:
            logger.exception("storing the images of job %s failed", job.id)
            fail_or_retry(job, exc)


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


def store_and_succeed(
    job: GenerationJob, outputs: list[Output], *, gpu_seconds: float, batch_images: int
) -> None:
    """Store an attempt's images, judge them, and finish the attempt (see ``outcomes``).

    The inline judges (checks, safety, CLIP) run here; when the job's rubric needs the VLM, or
    the LLM is to refine the prompt, the attempt waits in ``judging`` for the CPU worker.
    """
    from PIL import Image

    from .provenance import image_id_for, job_provenance

    written: list[dict[str, Any]] = []
    judged: list[JudgedImage] = []
    size = (int(job.params["width"]), int(job.params["height"]))
    marks = job_provenance(job)  # watermark policy and signer, once per job
    storage.objects_intended(job_id=job.id, keys=_keys(job, outputs))
    try:
        for out in outputs:
            image = out.image
            if image is None:
                image = Image.open(io.BytesIO(out.png_bytes), formats=["PNG", "JPEG"])
                image.load()
            image_id = image_id_for(job_id=job.id, index=out.index, attempt=job.attempts)
            image = marks.watermarked(image, image_id=image_id)
            metadata = png_metadata(job, seed=out.seed, index=out.index)
            data = marks.png(image, metadata, image_id=image_id)
            ids = {"org_id": job.organization_id, "job_id": job.id, "index": out.index}
            key = storage.image_key(**ids, attempt=job.attempts)
            thumb = storage.thumbnail_key(**ids, attempt=job.attempts)
            written.append(
                {
                    "id": image_id,
                    "index": out.index,
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
            storage.write_object(thumb, marks.thumbnail(image, image_id=image_id, seed=out.seed))
            judged.append(
                quality.judged_image(
                    image,
                    png=data,
                    prompt=job.prompt,
                    size=size,
                    layout=quality.layout_boxes(job.params),
                )
            )
    except Exception:
        delete_objects(written)
        raise
    gate = quality.job_gate(job)
    answers = quality.answer(gate, judged, judges=gate.inline_judges)
    verdicts = [quality.verdict_of(gate, a) for a in answers] if not gate.needs_queue else []
    wants_llm = gate.llm_refine and any(not v.passed for v in verdicts)

    def record(scores: list[dict[str, Any]]) -> Any:
        def record_images(finished: GenerationJob) -> list[GeneratedImage]:
            rows = []
            for row, image_scores in zip(written, scores, strict=True):
                fields = {
                    "organization_id": finished.organization_id,
                    "scores": image_scores,
                    **{k: v for k, v in row.items() if k not in ("index", "id")},
                }
                image_row, _ = GeneratedImage.objects.update_or_create(
                    job=finished,
                    index=row["index"],
                    attempt=finished.attempts,
                    defaults=fields,
                    create_defaults={**fields, "id": row["id"]},  # the id the files name
                )
                rows.append(image_row)
            storage.objects_kept(
                [key for row in written for key in (row["storage_key"], row["thumbnail_key"])]
            )
            return rows

        return record_images

    run_fields = {
        "gpu_seconds": outcomes.gpu_seconds_added(gpu_seconds),
        "batch_size": batch_images,
    }
    if gate.needs_queue or wants_llm:
        pending = [quality.pending_scores(gate, a) for a in answers]
        finished = job_transition(
            job_id=job.id,
            from_status=JobStatus.RUNNING,
            to_status=JobStatus.JUDGING,
            on_attempt=job.attempts,
            before_effects=record(pending),
            progress=1.0,
            lease_expires_at=timezone.now() + timedelta(seconds=settings.EASEL_JUDGE_LEASE_SECONDS),
            **run_fields,
        )
        if finished is not None:
            from .tasks import enqueue_judging

            enqueue_judging(job=finished)
    else:
        finished = outcomes.attempt_judged(
            job=job,
            from_status=JobStatus.RUNNING,
            gate=gate,
            verdicts=[(row["index"], v) for row, v in zip(written, verdicts, strict=True)],
            record=record([v.as_scores() for v in verdicts]),
            use_llm=False,
            **run_fields,
        )
    if finished is None:
        # Canceled, or reaped and re-claimed while we ran: the current owner decides.
        logger.warning("job %s changed hands during its run; its output is dropped", job.id)
        delete_objects(written)


def _keys(job: GenerationJob, outputs: list[Output]) -> list[str]:
    keys = []
    for out in outputs:
        ids = {"org_id": job.organization_id, "job_id": job.id, "index": out.index}
        keys += [
            storage.image_key(**ids, attempt=job.attempts),
            storage.thumbnail_key(**ids, attempt=job.attempts),
        ]
    return keys


def delete_objects(written: list[dict[str, Any]]) -> None:
    """Delete an unfinished attempt's objects; one storage cannot delete now is left to
    ``storage_leftovers_collect`` (its ``PendingObject`` row stays)."""
    for row in written:
        for key in (row["storage_key"], row["thumbnail_key"]):
            try:
                storage.delete_object(key)
            except Exception:  # storage down: collected later
                logger.warning("could not delete %s; it will be collected", key, exc_info=True)
            else:
                storage.objects_kept([key])


def finish_canceled(job: GenerationJob) -> None:
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
    if isinstance(exc, storage.StorageUnavailable):
        return (
            "storage_unavailable",
            f"The images were made but could not be saved: object storage failed ({exc}). "
            "Nothing was published; the job is retried while attempts remain.",
            True,
        )
    if isinstance(exc, ValueError):
        return "invalid_parameters", f"{exc} Change the request and submit again.", False
    return (
        "worker_error",
        f"Generation failed ({type(exc).__name__}: {exc}). Submit again; if it keeps failing, "
        f"report job {job.id} to your administrator.",
        True,
    )


def fail_or_retry(job: GenerationJob, exc: BaseException) -> None:
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

            backoff = float(settings.EASEL_RETRY_BACKOFF_SECONDS)
            enqueue_generation(job=retried, countdown=min(60, backoff * 2**job.attempts))
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
