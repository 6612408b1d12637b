"""The one way a generation job changes status (InvokeAI's ``_set_queue_item_status``).

``job_transition`` moves a job from the status its caller saw to the next one with a conditional
update and acts only if exactly one row changed: a redelivered task, a reaper and a cancel racing
for one job can never both win. In the same transaction it does what every status change owes:

- the audit log gets the transition (verb ``generation.<status>``, before and after);
- a job that finishes settles its quota reservation on the images of every attempt it kept
  (the GPU ran for them, however it ended), or releases it when it made none;
- a job that finishes is announced by webhook (``job.<status>``, delivered after commit), listing
  only result images that passed the gate, and by ``signals.job_finished`` (in the transaction:
  the catalog app settles its run item with it).

A job moves ``pending → running → succeeded | failed | failed_quality | canceled``; ``running →
pending`` is a retry (the attempt failed and may succeed again, the worker's lease ran out, or the
quality gate refined the prompt), ``pending → canceled`` a cancel before any worker took it, and
``running → judging →`` an attempt waiting for the CPU worker's network judges.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from tenants import quotas
from tenants.audit import AuditVerb
from tenants.principal import Principal
from tenants.services import audit_event_record

from . import metrics, signals
from .models import GenerationJob, JobStatus
from .models.jobs import FINISHED_STATUSES

logger = logging.getLogger(__name__)

ALLOWED_TRANSITIONS = frozenset(
    {
        (JobStatus.PENDING, JobStatus.RUNNING),
        (JobStatus.PENDING, JobStatus.CANCELED),
        (JobStatus.RUNNING, JobStatus.SUCCEEDED),
        (JobStatus.RUNNING, JobStatus.FAILED),
        (JobStatus.RUNNING, JobStatus.FAILED_QUALITY),
        (JobStatus.RUNNING, JobStatus.CANCELED),
        (JobStatus.RUNNING, JobStatus.PENDING),
        (JobStatus.RUNNING, JobStatus.JUDGING),
        (JobStatus.JUDGING, JobStatus.SUCCEEDED),
        (JobStatus.JUDGING, JobStatus.FAILED_QUALITY),
        (JobStatus.JUDGING, JobStatus.PENDING),
        (JobStatus.JUDGING, JobStatus.CANCELED),
    }
)

VERB_FOR_STATUS = {
    JobStatus.RUNNING: AuditVerb.GENERATION_STARTED,
    JobStatus.JUDGING: AuditVerb.GENERATION_JUDGING,
    JobStatus.PENDING: AuditVerb.GENERATION_RETRIED,
    JobStatus.FAILED_QUALITY: AuditVerb.GENERATION_FAILED_QUALITY,
    JobStatus.SUCCEEDED: AuditVerb.GENERATION_SUCCEEDED,
    JobStatus.FAILED: AuditVerb.GENERATION_FAILED,
    JobStatus.CANCELED: AuditVerb.GENERATION_CANCELED,
}


class TransitionNotAllowed(ValueError):
    """A programming error: no code path may move a job this way."""


@transaction.atomic
def job_transition(
    *,
    job_id: Any,
    from_status: str,
    to_status: str,
    on_attempt: int | None = None,
    actor: Principal | None = None,
    verb: AuditVerb | None = None,
    where: dict[str, Any] | None = None,
    before_effects: Callable[[GenerationJob], None] | None = None,
    **fields: Any,
) -> GenerationJob | None:
    """Move job ``job_id`` from ``from_status`` to ``to_status``; the job, or ``None`` if it was
    no longer there (or no longer on attempt ``on_attempt``, or no longer matching ``where``).

    ``fields`` are set in the same update (an ``F()`` expression is fine); a finishing transition
    also sets ``finished_at`` and clears the lease unless given. ``before_effects(job)`` runs after
    the update and before quota, audit and webhook, inside the transaction (the worker records the
    images there, so the settlement counts them and the webhook lists them).
    """
    if (from_status, to_status) not in ALLOWED_TRANSITIONS:
        raise TransitionNotAllowed(f"A job cannot move from {from_status} to {to_status}.")
    rows = GenerationJob.objects.filter(id=job_id, status=from_status)
    if on_attempt is not None:
        rows = rows.filter(attempts=on_attempt)
    if where:
        rows = rows.filter(**where)
    updates: dict[str, Any] = {"status": to_status, **fields}
    if to_status in FINISHED_STATUSES:
        updates.setdefault("finished_at", timezone.now())
        updates.setdefault("lease_expires_at", None)
    if rows.update(**updates) != 1:
        return None
    job = GenerationJob.objects.select_related(
        "organization", "team", "base_model", "model_version", "category"
    ).get(id=job_id)
    if before_effects is not None:
        before_effects(job)
    if to_status in FINISHED_STATUSES:
        made = job.images.count()
        if made:  # every attempt the GPU ran is charged, however the job ended
            quotas.quota_settle(
                reference=job.quota_reference, images=made, gpu_seconds=job.gpu_seconds
            )
        else:
            quotas.quota_release(reference=job.quota_reference)
    after: dict[str, Any] = {"status": to_status, "attempts": job.attempts}
    if job.error_code and to_status in (
        JobStatus.FAILED,
        JobStatus.FAILED_QUALITY,
        JobStatus.PENDING,
    ):
        after["error_code"] = job.error_code
    audit_event_record(
        org=job.organization,
        actor=actor,
        verb=verb or VERB_FOR_STATUS[to_status],
        obj=job,
        before={"status": from_status},
        after=after,
    )
    if to_status in FINISHED_STATUSES:
        job_finished_emit(job=job)
        signals.job_finished.send(sender=GenerationJob, job=job)
    transaction.on_commit(
        partial(metrics.job_transitioned, job, from_status=from_status, to_status=to_status)
    )
    return job


def job_event_payload(job: GenerationJob) -> dict[str, Any]:
    """What a webhook says about a finished job (ids and facts, no short-lived URLs)."""
    return {
        "id": str(job.id),
        "status": job.status,
        "priority": job.priority,
        "num_images": job.num_images,
        "attempts": job.attempts,
        "gpu_seconds": round(job.gpu_seconds, 3),
        "error": {"code": job.error_code, "message": job.error_message}
        if job.status in (JobStatus.FAILED, JobStatus.FAILED_QUALITY)
        else None,
        "images": [
            {
                "id": str(image.id),
                "index": image.index,
                "seed": image.seed,
                "sha256": image.sha256,
                "width": image.width,
                "height": image.height,
            }
            # Only what passed the gate: a flagged or failing image never reaches a webhook.
            for image in job.images.filter(is_result=True, scores__passed=True).order_by("index")
        ]
        if job.status == JobStatus.SUCCEEDED
        else [],
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def job_finished_emit(*, job: GenerationJob) -> None:
    """Emit ``job.succeeded`` / ``job.failed`` / ``job.canceled`` (delivered after commit)."""
    from tenants.webhooks import webhook_event_emit

    webhook_event_emit(
        org=job.organization,
        team=job.team,
        event=f"job.{job.status}",
        payload=job_event_payload(job),
    )
