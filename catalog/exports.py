"""Run exports: a manifest CSV of every item and a ZIP of the approved images named by SKU,
built on the CPU worker into temporary files (never whole in memory), stored under
``orgs/<org>/catalog-runs/<run>/`` and handed out as expiring links.

Manifest cells that a spreadsheet would read as a formula (starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return) are prefixed with ``'`` (OWASP's CSV-injection advice).
A completed run builds its export by itself and then announces ``catalog_run.completed``.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import tempfile
import zipfile
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from generation import storage
from generation.models import GeneratedImage, ReviewStatus
from tenants.errors import Conflict
from tenants.principal import Principal
from tenants.roles import Action
from tenants.services import require
from tenants.webhooks import webhook_event_emit

from .models import CatalogRun, ExportStatus, RunItem

MANIFEST_COLUMNS = (
    "sku",
    "name",
    "category",
    "status",
    "image_id",
    "image_url",
    "model_version",
    "template",
    "template_version",
    "gate_passed",
    "gate_score",
    "review_status",
    "error",
)
logger = logging.getLogger(__name__)

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class ExportNotReady(Conflict):
    code = "export_not_ready"


def escape_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_PREFIXES) else text


def export_keys(run: CatalogRun) -> tuple[str, str]:
    prefix = f"orgs/{run.organization_id}/catalog-runs/{run.pk}"
    return f"{prefix}/manifest.csv", f"{prefix}/images.zip"


def zip_name(sku: str, used: set[str]) -> str:
    """``<sku>.png`` with unsafe characters replaced; a clash gets ``-2``, ``-3``…"""
    stem = _UNSAFE_NAME.sub("_", sku).strip("._") or "product"
    name, n = f"{stem}.png", 1
    while name in used:
        n += 1
        name = f"{stem}-{n}.png"
    used.add(name)
    return name


@transaction.atomic
def catalog_export_request(
    *, run: CatalogRun, actor: Principal | None = None, announce: bool = False
) -> CatalogRun:
    """Queue a (re)build of the run's export; ``announce`` sends ``catalog_run.completed`` when
    it is ready (a completed run's own export)."""
    if actor is not None:
        require(actor, Action.VIEW)
    now = timezone.now()
    CatalogRun.objects.filter(pk=run.pk).update(
        export_status=ExportStatus.BUILDING, export_error="", export_requested_at=now
    )
    run.export_status, run.export_requested_at = ExportStatus.BUILDING, now
    from .tasks import enqueue_export

    enqueue_export(run.pk, announce=announce)
    return run


def _result_images(items: list[RunItem]) -> dict[Any, GeneratedImage]:
    jobs = [i.job_id for i in items if i.job_id]
    images = (
        GeneratedImage.objects.filter(job_id__in=jobs, is_result=True)
        .select_related("review")
        .order_by("job_id", "index")
    )
    first: dict[Any, GeneratedImage] = {}
    for image in images:
        first.setdefault(image.job_id, image)
    return first


def _items(run: CatalogRun, size: int = 500) -> Iterator[list[RunItem]]:
    items = run.items.select_related(
        "product", "product__category", "job", "job__model_version", "job__template"
    ).order_by("id")
    last = 0
    while True:
        page = list(items.filter(id__gt=last)[:size])
        if not page:
            return
        yield page
        last = page[-1].pk


def _review_status(image: GeneratedImage | None) -> str:
    if image is None:
        return ""
    review = getattr(image, "review", None)
    return review.status if review else "pending"


def catalog_export_build(*, run_id: Any, announce: bool = False) -> CatalogRun:
    """Write the manifest and the ZIP of approved images; mark the export ready (or failed).
    ``announce``: then send ``catalog_run.completed`` (also when the export failed: the run is
    complete either way, and the payload says how its export went)."""
    run = CatalogRun.objects.select_related("organization", "catalog").get(pk=run_id)
    requested_at = run.export_requested_at
    manifest_key, zip_key = export_keys(run)
    base = settings.EASEL_PUBLIC_URL
    used: set[str] = set()
    try:
        with (
            tempfile.TemporaryFile() as manifest_file,
            tempfile.TemporaryFile() as zip_file,
        ):
            text = io.TextIOWrapper(manifest_file, encoding="utf-8", newline="")
            writer = csv.writer(text)
            writer.writerow(MANIFEST_COLUMNS)
            with zipfile.ZipFile(zip_file, "w", compression=zipfile.ZIP_STORED) as archive:
                for page in _items(run):
                    images = _result_images(page)
                    for item in page:
                        image = images.get(item.job_id)
                        job = item.job
                        scores = (image.scores or {}) if image else {}
                        review = _review_status(image)
                        url = base + reverse("v1:image-download", args=[image.pk]) if image else ""
                        writer.writerow(
                            [
                                escape_cell(v)
                                for v in (
                                    item.product.sku,
                                    item.product.name,
                                    item.product.category.slug,
                                    item.status,
                                    image.pk if image else "",
                                    url,
                                    job.model_version_id if job and job.model_version_id else "",
                                    job.template.application if job and job.template else "",
                                    job.template_version if job else "",
                                    scores.get("passed", ""),
                                    scores.get("score", ""),
                                    review,
                                    item.error,
                                )
                            ]
                        )
                        if image is not None and review == ReviewStatus.APPROVED:
                            archive.writestr(
                                zip_name(item.product.sku, used),
                                storage.read_object(image.storage_key),
                            )
            text.flush()
            text.detach()
            manifest_file.seek(0)
            zip_file.seek(0)
            latest = CatalogRun.objects.filter(pk=run.pk, export_requested_at=requested_at)
            if not latest.exists():  # a newer request's build writes instead
                return run
            storage.write_object(manifest_key, manifest_file)
            storage.write_object(zip_key, zip_file)
    except Exception as exc:  # storage down, an image gone: the export fails, the run does not
        logger.exception("Export of catalog run %s failed", run.pk)
        fields = {"export_status": ExportStatus.FAILED, "export_error": str(exc)[:500]}
    else:
        fields = {
            "export_status": ExportStatus.READY,
            "export_manifest_key": manifest_key,
            "export_zip_key": zip_key,
            "export_error": "",
            "exported_at": timezone.now(),
        }
    with transaction.atomic():
        # A newer request's build (queued while this one ran) has the last word.
        CatalogRun.objects.filter(pk=run.pk, export_requested_at=requested_at).update(**fields)
        run.refresh_from_db()
        if announce:
            from .runs import run_progress

            webhook_event_emit(
                org=run.organization,
                team=run.team,
                event="catalog_run.completed",
                payload=completed_payload(run, run_progress(run).counts),
            )
    return run


def export_links(run: CatalogRun) -> dict[str, Any]:
    """Expiring links to the export; ``ExportNotReady`` (409) until it is built."""
    if run.export_status != ExportStatus.READY:
        state = run.export_status or "not requested"
        raise ExportNotReady(
            f"The export is {state}; request it with POST .../export and try again when it is "
            "ready."
        )
    manifest = storage.download_url(run.export_manifest_key)
    archive = storage.download_url(run.export_zip_key)
    return {
        "manifest_url": manifest.url,
        "zip_url": archive.url,
        "expires_at": min(manifest.expires_at, archive.expires_at),
        "exported_at": run.exported_at,
    }


def completed_payload(run: CatalogRun, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "id": str(run.pk),
        "catalog": run.catalog.slug,
        "mode": run.mode,
        "status": run.status,
        "counts": counts,
        "export_status": run.export_status,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "links": {
            "self": settings.EASEL_PUBLIC_URL + reverse("v1:catalog-run-detail", args=[run.pk]),
            "export": settings.EASEL_PUBLIC_URL + reverse("v1:catalog-run-export", args=[run.pk]),
        },
    }
