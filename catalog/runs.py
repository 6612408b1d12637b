"""Catalog runs: select products, submit their generation jobs in chunks, follow them to the end.

``catalog_run_create`` records the run (``pending``) and queues ``catalog_run_start`` on the CPU
worker, which makes one ``RunItem`` per selected product (``all``; ``missing``: no published
image; ``changed``: a published image made from older content) and moves the run to
``running``. ``catalog_run_advance`` submits queued items as ``bulk`` jobs while the
organization has fewer than ``EASEL_CATALOG_MAX_IN_FLIGHT`` catalog jobs queued or running,
``EASEL_CATALOG_CHUNK`` at a time; it runs when a run starts or resumes, whenever one of its jobs
finishes (``generation.signals.job_finished``) and every 30 s from beat (``catalog_runs_sweep``),
so a lost message, a restarted worker or beat only delays a run.

An item is submitted in the same transaction that creates its job (``queued → submitted`` by a
conditional update, under a lock on the run), so a product is never generated twice in one run.
Advances of one organization's runs take a lock on the organization, so the cap holds across its
runs. A job that cannot be made (a template variable gone, a category without a model) fails its
item with the reason and the run goes on; a quota that ran out pauses the run with the reason.
The quality gate applies to every job as to any other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, F, QuerySet
from django.utils import timezone

from generation.models import GenerationJob, JobPriority, JobStatus
from generation.protocol import GenerationRequestSerializer
from generation.services import JobNotCancelable, generation_job_cancel, generation_job_create
from generation.template_selectors import prompt_template_latest_list
from tenants.audit import AuditVerb
from tenants.errors import Conflict, LimitExceeded
from tenants.models import Organization
from tenants.principal import Principal
from tenants.roles import Action, Role
from tenants.services import audit_event_record, require

from .imports import ROW_VARIABLES
from .models import (
    ITEM_FINISHED,
    Catalog,
    CatalogRun,
    CatalogSchedule,
    ExportStatus,
    ItemStatus,
    Product,
    RunItem,
    RunMode,
    RunStatus,
)

logger = logging.getLogger(__name__)

ITEM_FOR_JOB = {
    JobStatus.SUCCEEDED: ItemStatus.SUCCEEDED,
    JobStatus.FAILED: ItemStatus.FAILED,
    JobStatus.FAILED_QUALITY: ItemStatus.FAILED_QUALITY,
    JobStatus.CANCELED: ItemStatus.CANCELED,
}
ITEM_BATCH = 5000


class RunNotChangeable(Conflict):
    code = "run_not_changeable"


@dataclass(frozen=True)
class RunProgress:
    counts: dict[str, int]
    total: int
    finished: int
    eta_seconds: float | None


VERB_FOR_STATUS = {
    RunStatus.RUNNING: AuditVerb.CATALOG_RUN_STARTED,
    RunStatus.PAUSED: AuditVerb.CATALOG_RUN_PAUSED,
    RunStatus.COMPLETED: AuditVerb.CATALOG_RUN_COMPLETED,
    RunStatus.CANCELED: AuditVerb.CATALOG_RUN_CANCELED,
}


def run_transition(
    run: CatalogRun,
    *,
    to_status: str,
    actor: Principal | None = None,
    verb: AuditVerb | None = None,
    details: dict[str, Any] | None = None,
    **fields: Any,
) -> CatalogRun:
    """The one place a run's status changes (the caller holds the run's row lock): the row and
    ``fields`` saved, and an audit event with ``details``."""
    before = run.status
    run.status = to_status
    for name, value in fields.items():
        setattr(run, name, value)
    run.save(update_fields=["status", *fields])
    audit_event_record(
        org=run.organization,
        actor=actor,
        verb=verb or VERB_FOR_STATUS[to_status],
        obj=run,
        before={"status": before},
        after={"status": to_status, **(details or {})},
    )
    return run


def run_system_principal(run: CatalogRun) -> Principal:
    """Who a run's jobs are submitted as: the system, with the run's team (for its quota)."""
    return Principal(org=run.organization, role=Role.ADMIN, team=run.team)


def products_for_mode(*, catalog: Catalog, mode: str) -> QuerySet[Product]:
    products = Product.objects.filter(catalog=catalog)
    if mode == RunMode.MISSING:
        return products.filter(published_image__isnull=True)
    if mode == RunMode.CHANGED:
        return products.filter(published_image__isnull=False).exclude(
            published_hash=F("content_hash")
        )
    return products


@transaction.atomic
def catalog_run_create(
    *,
    actor: Principal | None,
    catalog: Catalog,
    mode: str,
    schedule: CatalogSchedule | None = None,
) -> CatalogRun:
    """A ``pending`` run of ``catalog``; its items are selected by the CPU worker (so a
    100,000-product run answers at once). ``actor`` is None for a scheduled run."""
    if actor is not None:
        require(actor, Action.TRAIN)
    if mode not in RunMode.values:
        raise ValidationError({"mode": f"Unknown mode '{mode}'; use one of {RunMode.values}."})
    run = CatalogRun.objects.create(
        organization=catalog.organization,
        catalog=catalog,
        mode=mode,
        schedule=schedule,
        team=actor.team if actor else None,
        created_by=actor.person if actor else None,
        created_by_api_key=actor.api_key if actor else None,
    )
    audit_event_record(
        org=catalog.organization,
        actor=actor,
        verb=AuditVerb.CATALOG_RUN_CREATED,
        obj=run,
        after={
            "catalog": catalog.slug,
            "mode": mode,
            "schedule": schedule.pk if schedule else None,
        },
    )
    from .tasks import enqueue_run_start

    enqueue_run_start(run)
    return run


def catalog_run_start(*, run_id: Any) -> CatalogRun | None:
    """Select the run's products into items and start it; a run already started is left."""
    with transaction.atomic():
        run = CatalogRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status != RunStatus.PENDING:
            return run
        products = products_for_mode(catalog=run.catalog, mode=run.mode)
        batch: list[RunItem] = []
        total = 0
        for product_id in products.values_list("pk", flat=True).iterator(chunk_size=ITEM_BATCH):
            batch.append(
                RunItem(run=run, organization_id=run.organization_id, product_id=product_id)
            )
            if len(batch) >= ITEM_BATCH:
                RunItem.objects.bulk_create(batch)
                total += len(batch)
                batch = []
        RunItem.objects.bulk_create(batch)
        total += len(batch)
        run_transition(
            run,
            to_status=RunStatus.RUNNING,
            details={"items": total},
            items_total=total,
            started_at=timezone.now(),
        )
    catalog_run_advance(run_id=run.pk)
    return run


def _request_for(product: Product, catalog: Catalog, templates: dict[str, Any]) -> dict[str, Any]:
    """The generation request for ``product``: its template with the variables that template
    names (from its attributes, name and SKU), or its name as the prompt. A template gone or a
    variable missing is the protocol's to refuse, with its own message."""
    from generation.templates import template_variables

    application = product.template or catalog.default_template
    data: dict[str, Any] = {"category": product.category.slug, "num_images": 1}
    if not application:
        return {**data, "prompt": product.name}
    template = templates.get(application)
    offered = {**product.attributes, **{v: getattr(product, v) for v in ROW_VARIABLES}}
    needed = template_variables(template.text) if template else []
    return {
        **data,
        "template": application,
        "variables": {v: offered[v] for v in needed if v in offered},
    }


def _messages(errors: Any) -> str:
    if isinstance(errors, dict):
        return "; ".join(f"{k}: {_messages(v)}" for k, v in errors.items())
    if isinstance(errors, list):
        return " ".join(_messages(v) for v in errors)
    return str(errors)


def _submit(run: CatalogRun, item: RunItem, actor: Principal, templates: dict[str, Any]) -> None:
    """Create ``item``'s job and mark it submitted, in one savepoint; a job that cannot be made
    fails the item with the reason. ``LimitExceeded`` (quota) propagates."""
    product = item.product
    try:
        with transaction.atomic():
            serializer = GenerationRequestSerializer(
                data=_request_for(product, run.catalog, templates)
            )
            if not serializer.is_valid():
                raise ValidationError(_messages(serializer.errors))
            job = generation_job_create(
                actor=actor,
                data=serializer.validated_data,
                priority=JobPriority.BULK,
                product_ref=product.pk,
            )
            RunItem.objects.filter(pk=item.pk, status=ItemStatus.QUEUED).update(
                status=ItemStatus.SUBMITTED,
                job=job,
                content_hash=product.content_hash,
                submitted_at=timezone.now(),
            )
    except ValidationError as exc:
        message = " ".join(exc.messages) if hasattr(exc, "messages") else str(exc)
        RunItem.objects.filter(pk=item.pk, status=ItemStatus.QUEUED).update(
            status=ItemStatus.FAILED,
            error=f"The job could not be made: {message}"[:500],
            finished_at=timezone.now(),
        )


def catalog_run_advance(*, run_id: Any) -> int:
    """Submit the run's next queued items within the organization's cap; complete the run when
    nothing is left. The number of items submitted."""
    cap = int(settings.EASEL_CATALOG_MAX_IN_FLIGHT)
    chunk = int(settings.EASEL_CATALOG_CHUNK)
    with transaction.atomic():
        run = (
            CatalogRun.objects.select_for_update(of=("self",))
            .select_related("catalog", "organization", "team")
            .filter(pk=run_id)
            .first()
        )
        if run is None or run.status != RunStatus.RUNNING:
            return 0
        # One organization's advances take turns, so its cap holds across its runs.
        Organization.objects.select_for_update().filter(pk=run.organization_id).first()
        in_flight = RunItem.objects.filter(
            organization_id=run.organization_id, status=ItemStatus.SUBMITTED
        ).count()
        room = max(0, min(cap - in_flight, chunk))
        submitted = 0
        if room:
            actor = run_system_principal(run)
            templates = {
                t.application: t for t in prompt_template_latest_list(org=run.organization)
            }
            queued = (
                run.items.filter(status=ItemStatus.QUEUED)
                .select_related("product", "product__category")
                .order_by("id")[:room]
            )
            for item in queued:
                try:
                    _submit(run, item, actor, templates)
                except LimitExceeded as exc:
                    reason = f"Paused: {exc.message}"[:300]
                    run_transition(
                        run,
                        to_status=RunStatus.PAUSED,
                        details={"reason": reason},
                        paused_reason=reason,
                    )
                    return submitted
                submitted += 1
        _complete_if_done(run)
    more = submitted == room and room > 0
    if more:  # capacity left and items waiting: keep going without waiting for a job to finish
        from .tasks import enqueue_run_advance

        enqueue_run_advance(run.pk)
    return submitted


def _complete_if_done(run: CatalogRun) -> None:
    open_items = run.items.filter(status__in=[ItemStatus.QUEUED, ItemStatus.SUBMITTED])
    if run.status != RunStatus.RUNNING or open_items.exists():
        return
    run_transition(
        run,
        to_status=RunStatus.COMPLETED,
        details={"counts": run_progress(run).counts},
        finished_at=timezone.now(),
    )
    from .exports import catalog_export_request

    catalog_export_request(run=run, announce=True)


def run_item_job_finished(*, job: GenerationJob) -> None:
    """Settle the run item of a finished job (in the job's transaction) and advance its run
    once that commits."""
    if job.product_ref is None:
        return
    item = RunItem.objects.filter(job_id=job.pk).only("pk", "run_id").first()
    if item is None:
        return
    RunItem.objects.filter(pk=item.pk, status=ItemStatus.SUBMITTED).update(
        status=ITEM_FOR_JOB[job.status],
        error=(job.error_message or "")[:500],
        finished_at=job.finished_at or timezone.now(),
    )
    from .tasks import enqueue_run_advance

    enqueue_run_advance(item.run_id)


# --- a person's controls ----------------------------------------------------------------------


def _locked(run: CatalogRun) -> CatalogRun:
    return CatalogRun.objects.select_for_update().select_related("catalog").get(pk=run.pk)


@transaction.atomic
def catalog_run_pause(*, actor: Principal, run: CatalogRun) -> CatalogRun:
    """Stop submitting; the jobs already submitted finish."""
    require(actor, Action.TRAIN)
    run = _locked(run)
    if run.status not in (RunStatus.RUNNING, RunStatus.PENDING):
        raise RunNotChangeable(f"This run is {run.status}; only a running run can be paused.")
    return run_transition(run, to_status=RunStatus.PAUSED, actor=actor, paused_reason="")


@transaction.atomic
def catalog_run_resume(*, actor: Principal, run: CatalogRun) -> CatalogRun:
    require(actor, Action.TRAIN)
    run = _locked(run)
    if run.status != RunStatus.PAUSED:
        raise RunNotChangeable(f"This run is {run.status}; only a paused run can be resumed.")
    # A run paused before its items were selected has none: it starts over from selection.
    run_transition(
        run,
        to_status=RunStatus.RUNNING if run.started_at else RunStatus.PENDING,
        actor=actor,
        verb=AuditVerb.CATALOG_RUN_RESUMED,
        paused_reason="",
    )
    from .tasks import enqueue_run_advance, enqueue_run_start

    if run.status == RunStatus.PENDING:
        enqueue_run_start(run)
    else:
        enqueue_run_advance(run.pk)
    return run


@transaction.atomic
def catalog_run_cancel(*, actor: Principal, run: CatalogRun) -> CatalogRun:
    """Cancel the queued items and the submitted jobs; images already made stay."""
    require(actor, Action.TRAIN)
    run = _locked(run)
    if run.status in (RunStatus.COMPLETED, RunStatus.CANCELED):
        if run.status == RunStatus.CANCELED:
            return run
        raise RunNotChangeable("This run has completed; there is nothing to cancel.")
    now = timezone.now()
    run.items.filter(status=ItemStatus.QUEUED).update(status=ItemStatus.CANCELED, finished_at=now)
    system = run_system_principal(run)
    for item in run.items.filter(status=ItemStatus.SUBMITTED).select_related("job"):
        if item.job is None:
            continue
        try:
            generation_job_cancel(actor=system, job=item.job)
        except JobNotCancelable:
            pass  # it finished meanwhile; its item is settled by job_finished
    return run_transition(run, to_status=RunStatus.CANCELED, actor=actor, finished_at=now)


# --- progress and the sweep ---------------------------------------------------------------------


def run_progress(run: CatalogRun) -> RunProgress:
    """Items per status and an ETA from the run's pace so far (None before anything finished)."""
    rows = run.items.values("status").annotate(n=Count("id")).order_by()
    return _progress(run, {row["status"]: row["n"] for row in rows})


def run_progress_by_run(runs: list[CatalogRun]) -> dict[Any, RunProgress]:
    """``run_progress`` of each of ``runs`` (a page of the run list) from one grouped query."""
    rows = (
        RunItem.objects.filter(run__in=[run.pk for run in runs])
        .values("run_id", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    by_run: dict[Any, dict[str, int]] = {run.pk: {} for run in runs}
    for row in rows:
        by_run[row["run_id"]][row["status"]] = row["n"]
    return {run.pk: _progress(run, by_run[run.pk]) for run in runs}


def _progress(run: CatalogRun, found: dict[str, int]) -> RunProgress:
    counts = dict.fromkeys(ItemStatus.values, 0)
    counts.update(found)
    finished = sum(counts[s] for s in ITEM_FINISHED)
    total = sum(counts.values())
    eta = None
    if run.status == RunStatus.RUNNING and run.started_at and finished:
        elapsed = (timezone.now() - run.started_at).total_seconds()
        eta = round(elapsed / finished * (total - finished), 1)
    return RunProgress(counts=counts, total=total, finished=finished, eta_seconds=eta)


def catalog_runs_sweep() -> dict[str, int]:
    """Beat's safety net: start runs whose start message was lost, advance running ones, settle
    items whose job finished without the signal reaching them (a crash between), and ask again
    for exports stuck in ``building`` (their worker was lost)."""
    now = timezone.now()
    stale = now - timedelta(seconds=60)
    started = 0
    for run_id in CatalogRun.objects.filter(
        status=RunStatus.PENDING, created_at__lt=stale
    ).values_list("pk", flat=True)[:100]:
        catalog_run_start(run_id=run_id)
        started += 1
    settled = 0
    orphaned = RunItem.objects.filter(
        status=ItemStatus.SUBMITTED,
        job__status__in=list(ITEM_FOR_JOB),
    ).select_related("job")[:1000]
    for item in orphaned:
        settled += RunItem.objects.filter(pk=item.pk, status=ItemStatus.SUBMITTED).update(
            status=ITEM_FOR_JOB[item.job.status],
            error=(item.job.error_message or "")[:500],
            finished_at=item.job.finished_at or now,
        )
    # An item whose job row is gone (deleted with its organization's data) cannot finish.
    RunItem.objects.filter(status=ItemStatus.SUBMITTED, job__isnull=True).update(
        status=ItemStatus.FAILED, error="Its generation job no longer exists.", finished_at=now
    )
    advanced = 0
    for run_id in CatalogRun.objects.filter(status=RunStatus.RUNNING).values_list("pk", flat=True):
        advanced += catalog_run_advance(run_id=run_id)
    # An export whose CPU worker was lost mid-build: asked for again (a build is idempotent).
    from .exports import catalog_export_request

    rebuilt = 0
    export_stale = now - timedelta(seconds=settings.EASEL_CATALOG_EXPORT_STALE_SECONDS)
    for run in CatalogRun.objects.filter(
        export_status=ExportStatus.BUILDING, export_requested_at__lt=export_stale
    )[:100]:
        catalog_export_request(run=run, announce=run.status == RunStatus.COMPLETED)
        rebuilt += 1
    return {"started": started, "settled": settled, "submitted": advanced, "rebuilt": rebuilt}
