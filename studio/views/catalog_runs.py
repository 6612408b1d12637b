"""A catalog run's page: its items per status, a progress bar and an ETA that follow the run live
(htmx polls a fragment while the run goes on or its export is being built), why it paused,
pause/resume/cancel for editors, a link to review its images, and its export: a button that
(re)builds it and, once ready, expiring links to the manifest CSV and the ZIP."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_POST

from catalog import exports, runs, selectors
from catalog.models import CatalogRun, ExportStatus, ItemStatus
from tenants.roles import Action

from ..access import render_page, studio_view

FAILURES_SHOWN = 20


def _run_context(request: HttpRequest, run: CatalogRun) -> dict[str, Any]:
    progress = runs.run_progress(run)
    export = None
    if run.export_status == ExportStatus.READY:
        try:
            export = exports.export_links(run)
        except exports.ExportNotReady:  # rebuilt between the read and now: the next poll shows it
            export = None
    failures = selectors.run_item_list(run=run).filter(status=ItemStatus.FAILED).exclude(error="")
    return {
        "run": run,
        "progress": progress,
        "statuses": [(value, label, progress.counts[value]) for value, label in ItemStatus.choices],
        "eta_at": (
            timezone.now() + timedelta(seconds=progress.eta_seconds)
            if progress.eta_seconds is not None
            else None
        ),
        "export": export,
        "failures": failures[:FAILURES_SHOWN],
        "live": not run.is_finished or run.export_status == ExportStatus.BUILDING,
        "can_train": request.principal.can(Action.TRAIN),
        "can_review": request.principal.can(Action.REVIEW),
    }


@studio_view(Action.VIEW)
def run_detail(request: HttpRequest, run_id: str) -> HttpResponse:
    run = selectors.get_catalog_run_for_org(org=request.principal.org, run_id=run_id)
    return render_page(
        request, "studio/catalogs/run_detail.html", _run_context(request, run), section="catalogs"
    )


@studio_view(Action.VIEW)
def run_status(request: HttpRequest, run_id: str) -> HttpResponse:
    """The live part of the run page; it stops polling itself once nothing can change."""
    run = selectors.get_catalog_run_for_org(org=request.principal.org, run_id=run_id)
    return render_page(request, "studio/catalogs/run_status.html", _run_context(request, run))


def _control(
    request: HttpRequest,
    run_id: str,
    change: Callable[..., CatalogRun],
    done: str,
) -> HttpResponse:
    run = selectors.get_catalog_run_for_org(org=request.principal.org, run_id=run_id)
    try:
        change(actor=request.principal, run=run)
    except runs.RunNotChangeable as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("studio:catalog_run_detail", run_id=run.pk)


@require_POST
@studio_view(Action.TRAIN)
def run_pause(request: HttpRequest, run_id: str) -> HttpResponse:
    return _control(
        request, run_id, runs.catalog_run_pause, "Paused: the jobs already submitted finish."
    )


@require_POST
@studio_view(Action.TRAIN)
def run_resume(request: HttpRequest, run_id: str) -> HttpResponse:
    return _control(request, run_id, runs.catalog_run_resume, "Resumed.")


@require_POST
@studio_view(Action.TRAIN)
def run_cancel(request: HttpRequest, run_id: str) -> HttpResponse:
    return _control(
        request, run_id, runs.catalog_run_cancel, "Canceled; the images already made stay."
    )


@require_POST
@studio_view(Action.VIEW)  # what catalog_export_request asks of its actor
def run_export(request: HttpRequest, run_id: str) -> HttpResponse:
    run = selectors.get_catalog_run_for_org(org=request.principal.org, run_id=run_id)
    exports.catalog_export_request(run=run, actor=request.principal)
    messages.success(request, "Building the export; its links appear here when it is ready.")
    return redirect("studio:catalog_run_detail", run_id=run.pk)
