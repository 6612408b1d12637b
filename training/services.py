"""Writes of fine-tuning jobs: create (photos validated and stored before anything is queued),
cancel, and the reaper that hands a job whose worker was lost to the next one (which resumes from
the last checkpoint). Status changes go through ``training.transitions``."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from generation import storage
from models_registry.models import BaseModel, BuildStatus, Category
from tenants import quotas
from tenants.audit import AuditVerb
from tenants.errors import Conflict
from tenants.principal import Principal
from tenants.roles import Action
from tenants.services import audit_event_record, require

from .models import FINISHED, TrainingImage, TrainingJob, TrainingMode, TrainingStatus
from .params import training_params_resolve
from .transitions import training_transition
from .uploads import instance_images_validate

logger = logging.getLogger(__name__)

RARE_TOKEN = re.compile(r"^[a-z][a-z0-9]{1,19}$")
MAX_PROMPT_CHARS = 300


class TrainingNotCancelable(Conflict):
    code = "training_not_cancelable"


def training_base_model(category: Category) -> BaseModel:
    """What a category's fine-tune starts from: its base model, else its production version's,
    else the organization's default model."""
    from models_registry.selectors import alias_version

    base = category.base_model
    if base is None:
        production = alias_version(category=category, alias="production")
        base = production.base if production is not None else None
    if base is None and category.organization.default_model:
        base = BaseModel.objects.filter(name=category.organization.default_model).first()
    if base is None or base.status != BuildStatus.READY:
        raise ValidationError(
            {"category": f"Category '{category.slug}' has no ready base model to fine-tune."}
        )
    return base


def instance_image_key(*, org_id: int, job_id: Any, index: int) -> str:
    return f"orgs/{org_id}/trainings/{job_id}/instance/{index}.png"


def _prompts(*, rare_token: str, class_prompt: str, instance_prompt: str) -> tuple[str, str]:
    if not RARE_TOKEN.match(rare_token or ""):
        raise ValidationError(
            {"rare_token": "2–20 lowercase letters or digits, starting with a letter (e.g. 'sks')."}
        )
    class_prompt = " ".join((class_prompt or "").split())
    if not class_prompt:
        raise ValidationError({"class_prompt": "Describe the kind of product, e.g. 'a bottle'."})
    instance_prompt = " ".join((instance_prompt or "").split()) or f"{rare_token} {class_prompt}"
    if rare_token not in instance_prompt.split():
        raise ValidationError(
            {"instance_prompt": f"Must contain the rare token '{rare_token}' as a word."}
        )
    for name, text in (("class_prompt", class_prompt), ("instance_prompt", instance_prompt)):
        if len(text) > MAX_PROMPT_CHARS:
            raise ValidationError({name: f"At most {MAX_PROMPT_CHARS} characters."})
    return instance_prompt, class_prompt


@transaction.atomic
def training_job_create(
    *,
    actor: Principal,
    category: Category,
    files: Sequence[tuple[str, bytes]],
    rare_token: str,
    class_prompt: str,
    instance_prompt: str = "",
    mode: str = TrainingMode.LORA,
    params: Mapping[str, Any] | None = None,
    idempotency_key: str = "",
) -> TrainingJob:
    """A pending job with its validated, normalized photos stored; enqueued on ``train`` on
    commit. Any bad photo refuses the whole request (``ValidationError`` naming each file)."""
    require(actor, Action.TRAIN)
    if category.organization_id != actor.org.pk:
        raise ValidationError({"category": "No such category in this organization."})
    if mode not in TrainingMode.values:
        raise ValidationError({"mode": f"Use one of: {', '.join(TrainingMode.values)}."})
    instance_prompt, class_prompt = _prompts(
        rare_token=rare_token, class_prompt=class_prompt, instance_prompt=instance_prompt
    )
    base = training_base_model(category)
    resolved = training_params_resolve(family=base.family, given=dict(params or {}))
    images = instance_images_validate(files, resolution=resolved["resolution"])
    job = TrainingJob.objects.create(
        id=uuid.uuid4(),
        organization=actor.org,
        team=actor.team,
        created_by=actor.person,
        created_by_api_key=actor.api_key,
        category=category,
        base_model=base,
        mode=mode,
        rare_token=rare_token,
        instance_prompt=instance_prompt,
        class_prompt=class_prompt,
        params=resolved,
        total_steps=resolved["max_steps"],
        max_attempts=int(settings.EASEL_JOB_MAX_ATTEMPTS),
        idempotency_key=idempotency_key,
        # For a pending job: when to send its message again if no worker took it (lost).
        lease_expires_at=_resend_at(),
    )
    written: list[str] = []
    try:
        for index, image in enumerate(images):
            key = instance_image_key(org_id=actor.org.pk, job_id=job.id, index=index)
            storage.write_object(key, image.png)
            written.append(key)
            TrainingImage.objects.create(
                organization=actor.org,
                job=job,
                index=index,
                file_name=image.file_name[:255],
                storage_key=key,
                sha256=image.sha256,
                width=image.width,
                height=image.height,
                size_bytes=image.size_bytes,
            )
        quotas.quota_reserve(
            org=actor.org,
            team=actor.team,
            images=0,
            gpu_seconds=resolved["max_steps"] * settings.EASEL_TRAINING_GPU_SECONDS_PER_STEP,
            reference=job.quota_reference,
        )
    except Exception:  # the rollback drops the rows; the stored photos go too
        for key in written:
            storage.delete_object(key)
        raise
    audit_event_record(
        org=actor.org,
        actor=actor,
        verb=AuditVerb.TRAINING_SUBMITTED,
        obj=job,
        after={
            "category": category.slug,
            "mode": mode,
            "images": len(images),
            "steps": resolved["max_steps"],
        },
    )
    enqueue_training(job=job)
    return job


def enqueue_training(*, job: TrainingJob, countdown: float | None = None) -> None:
    from .tasks import run_training_task

    job_id = str(job.id)
    options = {"countdown": countdown} if countdown else {}
    transaction.on_commit(lambda: run_training_task.apply_async(args=[job_id], **options))


@transaction.atomic
def training_job_cancel(*, actor: Principal, job: TrainingJob) -> TrainingJob:
    """A pending job is canceled at once; a running one stops at its next step."""
    require(actor, Action.TRAIN)
    job = TrainingJob.objects.select_for_update().get(pk=job.pk)
    if job.status == TrainingStatus.CANCELED:
        return job
    if job.status in FINISHED:
        raise TrainingNotCancelable(f"This training job already {job.status}.")
    TrainingJob.objects.filter(pk=job.pk).update(cancel_requested=True)
    audit_event_record(
        org=actor.org,
        actor=actor,
        verb=AuditVerb.TRAINING_CANCEL_REQUESTED,
        obj=job,
        before={"status": job.status},
    )
    if job.status == TrainingStatus.PENDING:
        training_transition(
            job_id=job.pk,
            from_status=TrainingStatus.PENDING,
            to_status=TrainingStatus.CANCELED,
            actor=actor,
        )
    job.refresh_from_db()
    return job


def _resend_at() -> Any:
    return timezone.now() + timedelta(seconds=settings.EASEL_PENDING_RESEND_SECONDS)


def training_jobs_reap(*, now: Any = None) -> dict[str, int]:
    """A running job whose lease ran out lost its worker (crash, ``kill -9``): back to pending
    and enqueued, so the next worker resumes from its last checkpoint; out of attempts, failed.
    A pending job nobody took by its resend time lost its message (a broker restart): sent
    again (a duplicate finds the job claimed and does nothing)."""
    now = now or timezone.now()
    counts = {"requeued": 0, "failed": 0, "resent": 0}
    stuck = TrainingJob.objects.filter(status=TrainingStatus.RUNNING, lease_expires_at__lt=now)
    for job in stuck.only("id", "attempts", "max_attempts", "cancel_requested", "step")[:100]:
        if job.cancel_requested:
            outcome: dict[str, Any] = {"to_status": TrainingStatus.CANCELED}
        elif job.attempts >= job.max_attempts:
            outcome = {
                "to_status": TrainingStatus.FAILED,
                "error_code": "worker_lost",
                "error_message": f"The training worker stopped responding {job.attempts} times "
                f"(last at step {job.step}); the job was given up.",
            }
        else:
            outcome = {"to_status": TrainingStatus.PENDING, "lease_expires_at": _resend_at()}
        with transaction.atomic():
            moved = training_transition(
                job_id=job.id,
                from_status=TrainingStatus.RUNNING,
                on_attempt=job.attempts,
                where={"lease_expires_at__lt": now},
                **outcome,
            )
            if moved is None:
                continue
            if moved.status == TrainingStatus.PENDING:
                training_log_append(moved.id, f"worker lost at step {moved.step}; requeued")
                enqueue_training(job=moved)
                counts["requeued"] += 1
            elif moved.status == TrainingStatus.FAILED:
                counts["failed"] += 1
    lost = TrainingJob.objects.filter(status=TrainingStatus.PENDING, lease_expires_at__lt=now)
    for job in lost[:100]:
        with transaction.atomic():
            if TrainingJob.objects.filter(
                id=job.id, status=TrainingStatus.PENDING, lease_expires_at__lt=now
            ).update(lease_expires_at=_resend_at()):
                enqueue_training(job=job)
                counts["resent"] += 1
    return counts


def training_log_append(job_id: Any, line: str) -> None:
    """Add a timestamped line to the job's log (what a person reads on the job page)."""
    from django.db.models import Value
    from django.db.models.functions import Concat

    stamp = timezone.now().strftime("%Y-%m-%d %H:%M:%S")
    TrainingJob.objects.filter(id=job_id).update(log=Concat("log", Value(f"{stamp}  {line}\n")))


def training_lease_until() -> Any:
    return timezone.now() + timedelta(seconds=settings.EASEL_TRAINING_LEASE_SECONDS)
