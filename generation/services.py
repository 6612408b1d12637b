"""Writes for generation jobs: submit, cancel, reap; and the quota/webhook side of finishing.

Submit validates the request through the unified protocol, resolves the model, reserves quota and
creates a ``pending`` job in one transaction; the task is enqueued on commit. Image ``i`` of a job
uses seed ``seed + i`` (a request without a seed gets a random one, recorded on the job).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from tenants import quotas
from tenants.audit import AuditVerb
from tenants.errors import Conflict
from tenants.principal import Principal
from tenants.roles import Action
from tenants.services import audit_event_record, require

from .models import GenerationJob, JobPriority, JobStatus
from .models.jobs import FINISHED_STATUSES
from .transitions import job_transition

logger = logging.getLogger(__name__)

# What must match for two jobs to share one pipeline call (besides the model): one diffusers call
# takes one mode, size, step count, scheduler, guidance scale and strength (and an inpaint's soft
# edge). Prompt, negative prompt, seed, style, template, source, mask and layout differ freely
# between the images of a call — except that grounded and ungrounded images never share one: the
# fusers of a grounded call act on every image in it.
BATCH_PARAMS = ("width", "height", "steps", "scheduler", "cfg_scale", "family")
VARIATION_BATCH_PARAMS = ("mode", "strength", "feather")


class JobNotCancelable(Conflict):
    code = "not_cancelable"


def _params_dict(params: Any) -> dict[str, Any]:
    data = dataclasses.asdict(params) if dataclasses.is_dataclass(params) else dict(params)
    return json.loads(json.dumps(data, default=str))


def batch_key_for(
    *,
    backend: str,
    model_ref: str,
    base_id: int | None,
    version_id: int | None,
    params: Mapping[str, Any],
) -> str:
    """Jobs with equal keys can run in one pipeline call (see ``BATCH_PARAMS``)."""
    shared = {k: params.get(k) for k in BATCH_PARAMS}
    if params.get("mode", "txt2img") != "txt2img":  # (a plain job's key is what it always was)
        shared.update({k: params.get(k) for k in VARIATION_BATCH_PARAMS})
    if params.get("layout"):
        shared["grounded"] = True
    material = json.dumps(
        {"backend": backend, "ref": model_ref, "base": base_id, "version": version_id, **shared},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(material.encode()).hexdigest()


def job_batch_key(job: GenerationJob, params: Mapping[str, Any]) -> str:
    """The batch key of ``job`` run with ``params`` (a refined attempt may change its cfg)."""
    category, base = job.category_id, job.base_model_id
    return batch_key_for(
        backend=job.backend,
        model_ref=job.model or (f"category:{category}" if category else f"default:{base}"),
        base_id=base,
        version_id=job.model_version_id,
        params=params,
    )


def estimate_gpu_seconds(*, params: Mapping[str, Any], num_images: int) -> float:
    """A rough reservation; the worker settles the measured time."""
    pixels = int(params.get("width") or 512) * int(params.get("height") or 512)
    steps = int(params.get("steps") or 30)
    return round(num_images * steps * pixels / (512 * 512) * settings.EASEL_GPU_SECONDS_PER_STEP, 3)


# A new job's relations: the rows its create just resolved, so not checked again by full_clean.
_JOB_RELATIONS = [
    "organization",
    "team",
    "created_by",
    "created_by_api_key",
    "template",
    "category",
    "base_model",
    "model_version",
    "source_image",
    "source_upload",
]


@transaction.atomic
def generation_job_create(
    *,
    actor: Principal,
    data: Mapping[str, Any],
    priority: str = JobPriority.INTERACTIVE,
    idempotency_key: str = "",
    product_ref: int | None = None,
) -> GenerationJob:
    """Create a pending job from a validated request body; enqueue it on commit.

    ``product_ref`` is the catalog product the job makes an image for (set by catalog runs).

    Raises ``ValidationError`` (400) for a request the protocol or registry refuses and
    ``quotas.QuotaExceeded`` (429) when the organization's or team's quota would be exceeded.
    """
    from .backends import ProviderTarget, resolve_generation_target
    from .protocol import resolve_params

    require(actor, Action.GENERATE)
    org = actor.org
    model = data.get("model") or None
    target = resolve_generation_target(org=org, model=model, category=data.get("category"))
    params = resolve_params(org=org, data=data, resolved_model=target)
    hosted = target.name if isinstance(target, ProviderTarget) else None
    resolved = None if hosted else target
    values = _params_dict(params)  # resolve_params has chosen and recorded a seed if none came
    num_images = int(values.get("num_images") or 1)
    template_id = values.get("template_id")
    template_version = values.get("template_version")
    base = resolved.base if resolved else None
    version = resolved.version if resolved else None
    category = resolved.category if resolved else None
    job = GenerationJob(
        id=uuid.uuid4(),
        organization=org,
        team=actor.team,
        created_by=actor.person,
        created_by_api_key=actor.api_key,
        template_id=template_id,
        template_version=template_version,
        category=category,
        model=model or "",
        backend=hosted or "local",
        base_model=base,
        model_version=version,
        params=values,
        source_image_id=_source_id(values, "image"),
        source_upload_id=_source_id(values, "upload"),
        prompt=str(values.get("prompt") or ""),
        num_images=num_images,
        priority=priority,
        max_attempts=_max_attempts(template_id),
        lease_expires_at=timezone.now() + timedelta(seconds=settings.EASEL_PENDING_RESEND_SECONDS),
        idempotency_key=idempotency_key,
        product_ref=product_ref,
    )
    job.batch_key = job_batch_key(job, values)
    # The fields' own checks (lengths, choices); not the foreign keys, which are the rows this
    # request just resolved (and the database's constraints), nor a fresh uuid4's uniqueness:
    # those were four SELECTs per submission.
    job.full_clean(exclude=[*_JOB_RELATIONS, "params"], validate_unique=False)
    job.save(force_insert=True)
    quotas.quota_reserve(
        org=org,
        team=actor.team,
        images=num_images,
        gpu_seconds=estimate_gpu_seconds(params=values, num_images=num_images),
        reference=job.quota_reference,
    )
    audit_event_record(
        org=org,
        actor=actor,
        verb=AuditVerb.GENERATION_SUBMITTED,
        obj=job,
        after={
            "priority": priority,
            "num_images": num_images,
            "model": job.model or None,
            "category": category.slug if category else None,
            "model_version": version.pk if version else None,
            "template_version": template_version,
        },
    )
    from .tasks import enqueue_generation

    enqueue_generation(job=job)
    return job


def _source_id(params: Mapping[str, Any], kind: str) -> str | None:
    source = params.get("source") or {}
    return source.get("id") if source.get("kind") == kind else None


def _max_attempts(template_id: int | None) -> int:
    """A template's quality attempts bound the job's runs; otherwise the platform's default."""
    from .models import PromptTemplate

    if template_id is not None:
        found = PromptTemplate.objects.filter(pk=template_id).values_list("max_attempts", flat=True)
        if found:
            return int(found[0])
    return int(settings.EASEL_JOB_MAX_ATTEMPTS)


@transaction.atomic
def generation_job_cancel(*, actor: Principal, job: GenerationJob) -> GenerationJob:
    """Cancel a job: a pending one at once (quota released); a running one between steps.

    Canceling a canceled job changes nothing; a succeeded or failed one is a 409.
    """
    require(actor, Action.GENERATE)
    job = GenerationJob.objects.select_for_update().get(pk=job.pk)
    if job.status == JobStatus.CANCELED:
        return job
    if job.status in FINISHED_STATUSES:
        raise JobNotCancelable(f"This job already {job.status}; there is nothing to cancel.")
    GenerationJob.objects.filter(pk=job.pk).update(cancel_requested=True)
    audit_event_record(
        org=actor.org,
        actor=actor,
        verb=AuditVerb.GENERATION_CANCEL_REQUESTED,
        obj=job,
        before={"status": job.status},
    )
    if job.status == JobStatus.PENDING:
        job_transition(
            job_id=job.pk, from_status=JobStatus.PENDING, to_status=JobStatus.CANCELED, actor=actor
        )
    job.refresh_from_db()
    return job


# --- the reaper ------------------------------------------------------------------------------


def generation_jobs_reap(*, now: Any = None) -> dict[str, int]:
    """Re-enqueue jobs whose lease ran out; fail running ones that are out of attempts.

    A ``running`` job past its lease lost its worker (crash, OOM kill, lost node): it goes back to
    ``pending`` and is enqueued again, or fails once ``max_attempts`` claims have been used. A
    ``pending`` job past its lease lost its message (broker flushed or restarted): it is enqueued
    again; a ``judging`` one lost its CPU worker: its judging is enqueued again. Each row changes
    by a conditional update, so two reapers never double-handle one.
    """
    from .tasks import enqueue_generation, enqueue_judging

    now = now or timezone.now()
    counts = {"requeued": 0, "resent": 0, "failed": 0, "rejudged": 0}
    resend = timedelta(seconds=settings.EASEL_PENDING_RESEND_SECONDS)
    stuck = GenerationJob.objects.filter(status=JobStatus.RUNNING, lease_expires_at__lt=now)
    for job in stuck.only("id", "attempts", "max_attempts", "cancel_requested")[:500]:
        given_up = job.attempts >= job.max_attempts or job.cancel_requested
        if job.cancel_requested:
            outcome = {"to_status": JobStatus.CANCELED}
        elif given_up:
            outcome = {
                "to_status": JobStatus.FAILED,
                "error_code": "worker_lost",
                "error_message": f"The worker running this job stopped responding {job.attempts} "
                "time(s) (its lease expired each time), so it was given up. Submit it again; if "
                "it keeps happening, ask for fewer images or a smaller size, or report job "
                f"{job.id} to your administrator.",
            }
        else:
            outcome = {
                "to_status": JobStatus.PENDING,
                "lease_expires_at": now + resend,
                "error_code": "worker_lost",
                "error_message": f"Attempt {job.attempts}: the worker stopped responding; "
                "retrying.",
            }
        with transaction.atomic():
            moved = job_transition(
                job_id=job.id,
                from_status=JobStatus.RUNNING,
                on_attempt=job.attempts,
                where={"lease_expires_at__lt": now},
                **outcome,
            )
            if moved is None:
                continue
            if given_up:
                counts["failed"] += 1
            else:
                enqueue_generation(job=moved)
                counts["requeued"] += 1
    judging = GenerationJob.objects.filter(status=JobStatus.JUDGING, lease_expires_at__lt=now)
    for job in judging.only("id", "attempts")[:500]:
        # The CPU worker judging it was lost: hand the attempt to another (judging is idempotent).
        with transaction.atomic():
            if GenerationJob.objects.filter(
                id=job.id, status=JobStatus.JUDGING, lease_expires_at__lt=now
            ).update(lease_expires_at=now + timedelta(seconds=settings.EASEL_JUDGE_LEASE_SECONDS)):
                enqueue_judging(job=job)
                counts["rejudged"] += 1
    lost = GenerationJob.objects.filter(status=JobStatus.PENDING, lease_expires_at__lt=now)
    for job in lost[:500]:
        with transaction.atomic():
            if GenerationJob.objects.filter(
                id=job.id, status=JobStatus.PENDING, lease_expires_at__lt=now
            ).update(lease_expires_at=now + resend):
                enqueue_generation(job=job)
                counts["resent"] += 1
    if any(counts.values()):
        logger.info("generation reaper: %s", counts)
    return counts
