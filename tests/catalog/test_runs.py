"""Catalog runs through their services: selection by mode, submission in chunks within each
organization's cap, items settled by their jobs' ends, publishing per product, pause/resume/
cancel, a quota that pauses a run, the sweep, and completion that asks for the export.

Jobs finish through ``generation.transitions.job_transition``, the one function a worker uses;
only the messages to Celery are recorded instead of sent (``sent``)."""

from __future__ import annotations

import pytest

from catalog import runs
from catalog.imports import catalog_import
from catalog.models import ItemStatus, Product, RunStatus
from catalog.services import catalog_create
from generation.models import GenerationJob, JobPriority, JobStatus
from generation.review_services import image_review_decide
from generation.transitions import job_transition
from tenants import quotas
from tenants.audit import AuditVerb
from tenants.models import AuditEvent

from ..factories import make_image_row
from .conftest import csv_file, good_rows

pytestmark = pytest.mark.django_db


def _import(owner, catalog, rows):  # type: ignore[no-untyped-def]
    return catalog_import(
        actor=owner.principal, catalog=catalog, stream=csv_file(rows), file_name="p.csv"
    )


def _start(owner, catalog, mode="all"):  # type: ignore[no-untyped-def]
    run = runs.catalog_run_create(actor=owner.principal, catalog=catalog, mode=mode)
    runs.catalog_run_start(run_id=run.pk)
    run.refresh_from_db()
    return run


def finish(job: GenerationJob, status: str = JobStatus.SUCCEEDED) -> GenerationJob:
    """Run ``job`` to ``status`` as a worker would, with one result image."""
    job_transition(job_id=job.pk, from_status=JobStatus.PENDING, to_status=JobStatus.RUNNING)
    return job_transition(
        job_id=job.pk,
        from_status=JobStatus.RUNNING,
        to_status=status,
        before_effects=lambda j: make_image_row(j),
    )


def _jobs(run):  # type: ignore[no-untyped-def]
    return list(GenerationJob.objects.filter(run_item__run=run).order_by("created_at"))


def test_a_run_submits_in_chunks_within_the_cap_and_completes(owner, catalog, sent, settings):
    settings.EASEL_CATALOG_MAX_IN_FLIGHT = 3
    settings.EASEL_CATALOG_CHUNK = 2
    _import(owner, catalog, good_rows(5))
    run = _start(owner, catalog)
    assert (run.status, run.items_total) == (RunStatus.RUNNING, 5)
    assert len(_jobs(run)) == 2 and sent["advance"] == [run.pk]  # one chunk, more to come
    assert runs.catalog_run_advance(run_id=run.pk) == 1  # the cap: 3 in flight
    assert runs.catalog_run_advance(run_id=run.pk) == 0
    jobs = _jobs(run)
    assert {j.priority for j in jobs} == {JobPriority.BULK}
    product = Product.objects.get(pk=jobs[0].product_ref)
    assert jobs[0].params["prompt"] == f"a red {product.name}, studio photo"
    finish(jobs[0])
    assert run.items.get(job=jobs[0]).status == ItemStatus.SUCCEEDED
    assert runs.catalog_run_advance(run_id=run.pk) == 1
    for job in _jobs(run)[1:]:
        finish(job, JobStatus.FAILED_QUALITY if job.pk == jobs[1].pk else JobStatus.SUCCEEDED)
    runs.catalog_run_advance(run_id=run.pk)
    for job in _jobs(run)[4:]:
        finish(job)
    runs.catalog_run_advance(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    progress = runs.run_progress(run)
    assert progress.counts[ItemStatus.SUCCEEDED] == 4
    assert progress.counts[ItemStatus.FAILED_QUALITY] == 1
    assert sent["export"] == [(run.pk, True)]
    assert AuditEvent.objects.filter(verb=AuditVerb.CATALOG_RUN_COMPLETED).count() == 1


def test_the_cap_holds_across_runs_of_one_org_but_not_across_orgs(
    owner, outsider, catalog, sent, settings, tiny_base_model
):
    from models_registry import services as registry

    settings.EASEL_CATALOG_MAX_IN_FLIGHT = 2
    _import(owner, catalog, good_rows(3))
    other = catalog_create(actor=owner.principal, slug="other")
    _import(owner, other, good_rows(3))
    first, second = _start(owner, catalog), _start(owner, other)
    assert len(_jobs(first)) == 2 and len(_jobs(second)) == 0
    registry.category_create(
        actor=outsider.principal, slug="produce", name="P", base_model=tiny_base_model
    )
    from generation.template_services import prompt_template_create

    prompt_template_create(actor=outsider.principal, application="listing", text="{colour} {name}")
    theirs = catalog_create(actor=outsider.principal, slug="spring")
    _import(outsider, theirs, good_rows(3))
    assert len(_jobs(_start(outsider, theirs))) == 2


def test_missing_and_changed_select_by_what_was_approved(owner, catalog, sent, persona):
    _import(owner, catalog, good_rows(4))
    run = _start(owner, catalog, "missing")
    for job in _jobs(run):
        finish(job)
    reviewer = persona("reviewer").principal
    approved = _jobs(run)[:2]
    for job in approved:
        image_review_decide(actor=reviewer, image=job.images.get(), status="approved")
    published = Product.objects.filter(published_image__isnull=False)
    assert {p.pk for p in published} == {j.product_ref for j in approved}
    assert all(p.published_hash == p.content_hash for p in published)
    assert AuditEvent.objects.filter(verb=AuditVerb.IMAGE_PUBLISHED).count() == 2
    runs.catalog_run_advance(run_id=run.pk)

    second = _start(owner, catalog, "missing")
    assert {i.product_id for i in second.items.all()} == set(
        Product.objects.filter(published_image__isnull=True).values_list("pk", flat=True)
    )
    assert second.items_total == 2

    edited = Product.objects.get(pk=approved[0].product_ref)
    rows = good_rows(4)
    rows[int(edited.sku[-3:]) - 1] = rows[int(edited.sku[-3:]) - 1].replace("red", "gold")
    _import(owner, catalog, rows)
    changed = _start(owner, catalog, "changed")
    assert [i.product_id for i in changed.items.all()] == [edited.pk]

    # Rejecting the published image takes it down: the product is missing again.
    image_review_decide(
        actor=reviewer, image=approved[1].images.get(), status="rejected", reason="blurry"
    )
    assert Product.objects.get(pk=approved[1].product_ref).published_image is None


def test_a_product_image_is_published_for_the_product_not_the_category(
    owner, catalog, sent, persona
):
    from generation.models import PublishedImage

    _import(owner, catalog, good_rows(1))
    [job] = _jobs(_start(owner, catalog))
    job = finish(job)
    image_review_decide(
        actor=persona("reviewer").principal, image=job.images.get(), status="approved"
    )
    assert not PublishedImage.objects.exists()
    assert Product.objects.get().published_image == job.images.get()


def test_an_item_whose_job_cannot_be_made_fails_with_the_reason_and_the_run_goes_on(
    owner, catalog, sent
):
    _import(owner, catalog, good_rows(2))
    Product.objects.filter(sku="SKU-001").update(attributes={})  # its template needs colour
    run = _start(owner, catalog)
    failed = run.items.get(product__sku="SKU-001")
    assert failed.status == ItemStatus.FAILED and failed.job is None
    assert "Missing variables: colour." in failed.error
    assert run.items.get(product__sku="SKU-002").status == ItemStatus.SUBMITTED


def test_a_quota_that_runs_out_pauses_the_run_with_the_reason(owner, catalog, sent):
    quotas.quota_set(
        actor=owner.principal, org=owner.org, images_per_day=2, gpu_seconds_per_month=None
    )
    _import(owner, catalog, good_rows(4))
    run = _start(owner, catalog)
    assert run.status == RunStatus.PAUSED and "quota" in run.paused_reason.lower()
    assert len(_jobs(run)) == 2
    quotas.quota_set(
        actor=owner.principal, org=owner.org, images_per_day=None, gpu_seconds_per_month=None
    )
    runs.catalog_run_resume(actor=owner.principal, run=run)
    runs.catalog_run_advance(run_id=run.pk)
    assert len(_jobs(run)) == 4


def test_pause_resume_and_cancel(owner, catalog, sent, settings):
    settings.EASEL_CATALOG_CHUNK = 1
    _import(owner, catalog, good_rows(3))
    run = _start(owner, catalog)
    run = runs.catalog_run_pause(actor=owner.principal, run=run)
    assert runs.catalog_run_advance(run_id=run.pk) == 0  # paused: nothing more is submitted
    with pytest.raises(runs.RunNotChangeable):
        runs.catalog_run_pause(actor=owner.principal, run=run)
    runs.catalog_run_resume(actor=owner.principal, run=run)
    assert runs.catalog_run_advance(run_id=run.pk) == 1
    run = runs.catalog_run_cancel(actor=owner.principal, run=run)
    assert run.status == RunStatus.CANCELED
    assert {j.status for j in _jobs(run)} == {JobStatus.CANCELED}
    assert set(run.items.values_list("status", flat=True)) == {ItemStatus.CANCELED}
    with pytest.raises(runs.RunNotChangeable):
        runs.catalog_run_resume(actor=owner.principal, run=run)


def test_starting_twice_makes_one_item_per_product(owner, catalog, sent):
    _import(owner, catalog, good_rows(3))
    run = _start(owner, catalog)
    runs.catalog_run_start(run_id=run.pk)
    assert run.items.count() == 3
    assert GenerationJob.objects.count() == 3


def test_the_sweep_starts_lost_runs_and_settles_items_whose_signal_was_lost(
    owner, catalog, sent, settings
):
    from datetime import timedelta

    from django.utils import timezone

    from catalog.models import CatalogRun, RunItem

    _import(owner, catalog, good_rows(2))
    run = runs.catalog_run_create(actor=owner.principal, catalog=catalog, mode="all")
    CatalogRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    assert runs.catalog_runs_sweep()["started"] == 1
    job = _jobs(run)[0]
    GenerationJob.objects.filter(pk=job.pk).update(status=JobStatus.FAILED, error_message="boom")
    runs.catalog_runs_sweep()
    item = RunItem.objects.get(job=job)
    assert (item.status, item.error) == (ItemStatus.FAILED, "boom")


def test_the_sweep_asks_again_for_an_export_whose_worker_was_lost(owner, catalog, sent, settings):
    from datetime import timedelta

    from django.utils import timezone

    from catalog.models import CatalogRun

    _import(owner, catalog, good_rows(1))
    run = _start(owner, catalog)
    old = timezone.now() - timedelta(seconds=settings.EASEL_CATALOG_EXPORT_STALE_SECONDS + 1)
    CatalogRun.objects.filter(pk=run.pk).update(
        status=RunStatus.COMPLETED, export_status="building", export_requested_at=old
    )
    assert runs.catalog_runs_sweep()["rebuilt"] == 1
    assert sent["export"] == [(run.pk, True)]
    assert runs.catalog_runs_sweep()["rebuilt"] == 0  # asked again just now: not stale
