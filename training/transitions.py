"""The one way a fine-tuning job changes status, as ``generation.transitions`` is for generation
jobs: a conditional update that acts only when exactly one row changed, and in the same
transaction the audit event (``training.<status>``), the quota (GPU-seconds settled on what ran,
released when nothing did) and, for a finished job, the webhook (``training.succeeded`` /
``training.failed``; a cancel is announced by its audit event only).

``pending → running → succeeded | failed | canceled``; ``running → pending`` when the worker was
lost (the next one resumes from the last checkpoint); ``pending → canceled`` before any worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from tenants import quotas
from tenants.audit import AuditVerb
from tenants.principal import Principal
from tenants.services import audit_event_record

from .models import FINISHED, TrainingJob, TrainingStatus

ALLOWED = frozenset(
    {
        (TrainingStatus.PENDING, TrainingStatus.RUNNING),
        (TrainingStatus.PENDING, TrainingStatus.CANCELED),
        (TrainingStatus.RUNNING, TrainingStatus.SUCCEEDED),
        (TrainingStatus.RUNNING, TrainingStatus.FAILED),
        (TrainingStatus.RUNNING, TrainingStatus.CANCELED),
        (TrainingStatus.RUNNING, TrainingStatus.PENDING),
    }
)
VERB = {
    TrainingStatus.RUNNING: AuditVerb.TRAINING_STARTED,
    TrainingStatus.PENDING: AuditVerb.TRAINING_RETRIED,
    TrainingStatus.SUCCEEDED: AuditVerb.TRAINING_SUCCEEDED,
    TrainingStatus.FAILED: AuditVerb.TRAINING_FAILED,
    TrainingStatus.CANCELED: AuditVerb.TRAINING_CANCELED,
}
WEBHOOK_FOR = {
    TrainingStatus.SUCCEEDED: "training.succeeded",
    TrainingStatus.FAILED: "training.failed",
}


class TransitionNotAllowed(ValueError):
    """A programming error: no code path may move a training job this way."""


@transaction.atomic
def training_transition(
    *,
    job_id: Any,
    from_status: str,
    to_status: str,
    on_attempt: int | None = None,
    actor: Principal | None = None,
    where: dict[str, Any] | None = None,
    before_effects: Callable[[TrainingJob], None] | None = None,
    **fields: Any,
) -> TrainingJob | None:
    """Move the job from ``from_status`` to ``to_status``; the job, or None if it was no longer
    there (or on another attempt, or not matching ``where``). ``fields`` go into the same update;
    ``before_effects(job)`` runs after it, before quota, audit and webhook."""
    if (from_status, to_status) not in ALLOWED:
        raise TransitionNotAllowed(f"A training job cannot move from {from_status} to {to_status}.")
    rows = TrainingJob.objects.filter(id=job_id, status=from_status)
    if on_attempt is not None:
        rows = rows.filter(attempts=on_attempt)
    if where:
        rows = rows.filter(**where)
    updates: dict[str, Any] = {"status": to_status, **fields}
    if to_status in FINISHED:
        updates.setdefault("finished_at", timezone.now())
        updates.setdefault("lease_expires_at", None)
    if rows.update(**updates) != 1:
        return None
    job = TrainingJob.objects.select_related("organization", "team", "category").get(id=job_id)
    if before_effects is not None:
        before_effects(job)
    if to_status in FINISHED:
        if job.gpu_seconds > 0:
            quotas.quota_settle(
                reference=job.quota_reference, images=0, gpu_seconds=job.gpu_seconds
            )
        else:
            quotas.quota_release(reference=job.quota_reference)
    after: dict[str, Any] = {"status": to_status, "attempts": job.attempts, "step": job.step}
    if job.error_code:
        after["error_code"] = job.error_code
    audit_event_record(
        org=job.organization,
        actor=actor,
        verb=VERB[to_status],
        obj=job,
        before={"status": from_status},
        after=after,
    )
    if to_status in WEBHOOK_FOR:
        from tenants.webhooks import webhook_event_emit

        webhook_event_emit(
            org=job.organization,
            team=job.team,
            event=WEBHOOK_FOR[to_status],
            payload=training_event_payload(job),
        )
    return job


def training_event_payload(job: TrainingJob) -> dict[str, Any]:
    return {
        "id": str(job.id),
        "status": job.status,
        "category": job.category.slug,
        "mode": job.mode,
        "steps": job.step,
        "total_steps": job.total_steps,
        "gpu_seconds": round(job.gpu_seconds, 3),
        "output_version": job.output_version_id,
        "error": {"code": job.error_code, "message": job.error_message}
        if job.status == TrainingStatus.FAILED
        else None,
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }
