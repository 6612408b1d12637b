"""Studio catalog pages doing their work: a catalog created from the list; an upload with bad
rows shows the row report naming each rejected line, a file that cannot be read is refused with
its message; a run started, paused and canceled from its pages; schedules created, refused with
the cron parser's message, edited, disabled and deleted; the run's live fragment; an outsider's
catalog, run and schedule are 404; the review queue narrowed to one run's or one product's images.

Only the messages to Celery are recorded instead of sent (``sent``); jobs finish through
``job_transition`` as a worker's do."""

from __future__ import annotations

import html
import re
import urllib.request

import pytest

from catalog import runs
from catalog.imports import catalog_import
from catalog.models import Catalog, CatalogImport, CatalogRun, CatalogSchedule, Product, RunStatus
from catalog.schedules import catalog_schedule_create
from generation import storage
from generation.models import GenerationJob
from tests.catalog.conftest import csv_file, good_rows
from tests.catalog.test_runs import finish

from .conftest import make_job

pytestmark = pytest.mark.django_db


def _text(response) -> str:  # type: ignore[no-untyped-def]
    return html.unescape(response.content.decode())


def _started_run(owner, catalog, rows: int = 2, mode: str = "all") -> CatalogRun:  # type: ignore[no-untyped-def]
    catalog_import(
        actor=owner.principal, catalog=catalog, stream=csv_file(good_rows(rows)), file_name="p.csv"
    )
    run = runs.catalog_run_create(actor=owner.principal, catalog=catalog, mode=mode)
    runs.catalog_run_start(run_id=run.pk)
    run.refresh_from_db()
    return run


def _download(client, url: str) -> bytes:  # type: ignore[no-untyped-def]
    """What an export link serves: the API's signed-file view (local storage) or S3 itself."""
    if url.startswith("/"):
        return b"".join(client.get(url).streaming_content)
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - the test's own S3
        return response.read()


def _run_jobs(run: CatalogRun) -> list[GenerationJob]:
    return list(GenerationJob.objects.filter(run_item__run=run).order_by("product_ref"))


# --- catalogs and uploads ----------------------------------------------------------------------


def test_an_editor_creates_a_catalog_and_a_refused_slug_keeps_what_was_typed(
    persona, studio_client, listing
):
    client = studio_client(persona("editor"))
    response = client.post(
        "/studio/catalogs/", {"slug": "spring", "name": "Spring", "default_template": "listing"}
    )
    assert response.status_code == 302 and response["Location"] == "/studio/catalogs/spring/"
    assert Catalog.objects.get(slug="spring").default_template == "listing"

    again = client.post("/studio/catalogs/", {"slug": "spring", "name": "Again"})
    assert again.status_code == 400
    page = _text(again)
    assert "already has a catalog 'spring'" in page and 'value="Again"' in page
    bad = client.post("/studio/catalogs/", {"slug": "no spaces!", "name": "Bad"})
    assert bad.status_code == 400 and "slug" in _text(bad)
    assert Catalog.objects.count() == 1


def test_upload_with_bad_rows_shows_the_report_naming_each_rejected_line(
    owner, studio_client, catalog
):
    rows = [
        *good_rows(3),
        "SKU-900,Steak,meat,listing,red",
        ",No sku,produce,listing,red",
        "SKU-901,Pear,produce,listing,",
    ]
    client = studio_client(owner)
    response = client.post("/studio/catalogs/spring/import/", {"file": csv_file(rows)})
    record = CatalogImport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/studio/catalogs/spring/?import={record.pk}#import-report"

    page = _text(client.get(f"/studio/catalogs/spring/?import={record.pk}"))
    report = page.split('data-testid="import-report"', 1)[1].split("</section>", 1)[0]
    assert re.findall(r'data-testid="rejection" data-line="(\d+)"', report) == ["5", "6", "7"]
    assert "unknown category 'meat'" in report and "missing SKU" in report
    assert "needs colour" in report
    counts = dict(re.findall(r'data-count="(\w+)">(\d+)<', report))
    assert counts == {
        "total": "6",
        "created": "3",
        "updated": "0",
        "unchanged": "0",
        "rejected": "3",
    }
    products = page.split('data-testid="products"', 1)[1].split("</table>", 1)[0]
    assert re.findall(r'data-sku="([^"]+)"', products) == ["SKU-001", "SKU-002", "SKU-003"]


def test_a_file_without_a_header_is_refused_with_its_message_and_nothing_is_imported(
    owner, studio_client, catalog
):
    client = studio_client(owner)
    headless = csv_file(good_rows(2), header="")
    response = client.post("/studio/catalogs/spring/import/", {"file": headless, "format": "csv"})
    assert response.status_code == 400
    page = _text(response)
    assert "The header lacks the column(s)" in page
    assert '<option value="csv" selected>' in page  # the form keeps what was chosen
    assert not CatalogImport.objects.exists() and not Product.objects.exists()

    nothing = client.post("/studio/catalogs/spring/import/", {"format": ""})
    assert nothing.status_code == 400 and "Choose a CSV or JSONL file" in _text(nothing)


def test_products_are_filtered_and_show_their_published_image_and_changed_badge(
    owner, persona, studio_client, catalog, sent
):
    from generation.review_services import image_review_decide

    run = _started_run(owner, catalog, rows=3)
    first = finish(_run_jobs(run)[0])
    image_review_decide(
        actor=persona("reviewer").principal, image=first.images.get(), status="approved"
    )
    published = Product.objects.get(pk=first.product_ref)
    client = studio_client(owner)

    def skus(query: str) -> list[str]:
        page = _text(client.get(f"/studio/catalogs/spring/?{query}"))
        return re.findall(r'data-sku="([^"]+)"', page.split('data-testid="products"', 1)[1])

    assert skus("state=published") == [published.sku]
    assert published.sku not in skus("state=missing") and len(skus("state=missing")) == 2
    assert skus("state=changed") == [] and skus("q=apple 2") == ["SKU-002"]
    page = _text(client.get("/studio/catalogs/spring/?state=published"))
    assert f"/studio/images/{first.images.get().pk}/file/" in page
    assert 'data-testid="changed"' not in page
    Product.objects.filter(pk=published.pk).update(content_hash="edited")
    assert skus("state=changed") == [published.sku]
    assert 'data-testid="changed"' in _text(client.get("/studio/catalogs/spring/"))


# --- runs --------------------------------------------------------------------------------------


def test_starting_a_run_from_the_catalog_page_queues_it(owner, studio_client, catalog, sent):
    client = studio_client(owner)
    response = client.post("/studio/catalogs/spring/runs/", {"mode": "missing"})
    run = CatalogRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/studio/catalog-runs/{run.pk}/"
    assert (run.mode, run.status, sent["start"]) == ("missing", RunStatus.PENDING, [run.pk])
    page = _text(client.get(response["Location"]))
    assert "Run started" in page and f'href="/studio/review/?run={run.pk}"' in page

    refused = client.post("/studio/catalogs/spring/runs/", {"mode": "everything"})
    assert refused.status_code == 400 and "Unknown mode 'everything'" in _text(refused)
    assert CatalogRun.objects.count() == 1


def test_pause_resume_and_cancel_from_the_run_page(owner, studio_client, catalog, sent):
    run = _started_run(owner, catalog)
    client = studio_client(owner)
    url = f"/studio/catalog-runs/{run.pk}/"
    assert 'id="pause-run"' in _text(client.get(url))

    page = _text(client.post(f"{url}pause/", follow=True))
    run.refresh_from_db()
    assert run.status == RunStatus.PAUSED and "Paused: the jobs already submitted finish." in page
    assert 'id="resume-run"' in page
    client.post(f"{url}resume/")
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING

    page = _text(client.post(f"{url}cancel/", follow=True))
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELED and 'id="cancel-run"' not in page
    refused = _text(client.post(f"{url}pause/", follow=True))
    assert "This run is canceled; only a running run can be paused." in refused


def test_the_status_fragment_polls_until_the_run_and_its_export_are_done(
    owner, studio_client, catalog, sent
):
    run = _started_run(owner, catalog, rows=2)
    client = studio_client(owner)
    status_url = f"/studio/catalog-runs/{run.pk}/status/"
    fragment = _text(client.get(status_url))
    assert f'hx-get="{status_url}"' in fragment and "0 of 2 items finished" in fragment
    assert re.search(r'data-item-status="submitted">.*?class="count">2<', fragment)

    for job in _run_jobs(run):
        finish(job)
    runs.catalog_run_advance(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and run.export_status == "building"
    fragment = _text(client.get(status_url))
    assert "2 of 2 items finished" in fragment and "Building the export" in fragment
    assert "hx-get" in fragment  # still polling: the links come when the export is ready

    manifest, archive = f"orgs/{owner.org.pk}/m.csv", f"orgs/{owner.org.pk}/i.zip"
    storage.write_object(manifest, b"sku,status\n")
    storage.write_object(archive, b"PK zip")
    CatalogRun.objects.filter(pk=run.pk).update(
        export_status="ready", export_manifest_key=manifest, export_zip_key=archive
    )
    fragment = _text(client.get(status_url))
    assert "hx-get" not in fragment
    links = dict(re.findall(r'href="([^"]+)" data-testid="export-(manifest|zip)"', fragment))
    downloaded = {kind: _download(client, url) for url, kind in links.items()}
    assert downloaded == {"manifest": b"sku,status\n", "zip": b"PK zip"}

    response = client.post(f"/studio/catalog-runs/{run.pk}/export/")
    assert response.status_code == 302 and sent["export"][-1] == (run.pk, False)
    run.refresh_from_db()
    assert run.export_status == "building"


def test_a_failed_export_shows_its_error(owner, studio_client, catalog, sent):
    run = _started_run(owner, catalog, rows=1)
    CatalogRun.objects.filter(pk=run.pk).update(export_status="failed", export_error="S3 is down")
    page = _text(studio_client(owner).get(f"/studio/catalog-runs/{run.pk}/"))
    assert "The export failed: S3 is down" in page and 'id="build-export"' in page


# --- schedules ---------------------------------------------------------------------------------


def test_a_schedule_with_an_invalid_cron_shows_the_error_and_keeps_the_form(
    owner, studio_client, catalog
):
    client = studio_client(owner)
    response = client.post(
        "/studio/catalogs/spring/schedules/",
        {"mode": "changed", "cron": "61 * * * *", "interval_minutes": "", "time_zone": "UTC"},
    )
    assert response.status_code == 400
    page = _text(response)
    assert "Not a valid cron expression" in page and 'value="61 * * * *"' in page
    assert '<option value="changed" selected>' in page
    both = client.post(
        "/studio/catalogs/spring/schedules/",
        {"mode": "missing", "cron": "0 6 * * *", "interval_minutes": "30", "time_zone": ""},
    )
    assert both.status_code == 400 and "not both" in _text(both)
    words = client.post("/studio/catalogs/spring/schedules/", {"interval_minutes": "soon"})
    assert words.status_code == 400 and "whole number of minutes" in _text(words)
    assert not CatalogSchedule.objects.exists()


def test_a_schedule_is_created_in_the_orgs_time_zone_edited_disabled_and_deleted(
    owner, studio_client, catalog
):
    owner.org.time_zone = "Europe/Berlin"
    owner.org.save()
    client = studio_client(owner)
    response = client.post(
        "/studio/catalogs/spring/schedules/",
        {"mode": "missing", "cron": "", "interval_minutes": "60", "time_zone": "", "enabled": "on"},
    )
    assert response.status_code == 302
    schedule = CatalogSchedule.objects.get()
    assert (schedule.interval_minutes, schedule.time_zone, schedule.enabled) == (
        60,
        "Europe/Berlin",
        True,
    )
    url = f"/studio/schedules/{schedule.pk}/"
    edit = {"mode": "all", "cron": "0 6 * * 1", "interval_minutes": "", "time_zone": "UTC"}
    assert client.post(url, {**edit, "enabled": ["off", "on"]}).status_code == 302
    schedule.refresh_from_db()
    assert (schedule.cron, schedule.interval_minutes, schedule.mode) == ("0 6 * * 1", None, "all")
    assert schedule.periodic_task.crontab.hour == "6"

    refused = client.post(url, {**edit, "time_zone": "Mars/Olympus", "enabled": "on"})
    assert refused.status_code == 400 and 'value="Mars/Olympus"' in _text(refused)
    assert "Unknown time zone 'Mars/Olympus'" in _text(refused)
    assert "0 products ·" in _text(refused)  # the page around the refused form is the catalog's
    client.post(url, {"enabled": "off"})  # the Disable button
    schedule.refresh_from_db()
    assert not schedule.enabled and not schedule.periodic_task.enabled
    assert schedule.cron == "0 6 * * 1"
    assert "disabled" in _text(client.get("/studio/catalogs/spring/"))

    assert client.post(f"{url}delete/").status_code == 302
    assert not CatalogSchedule.objects.exists()


# --- other organizations, roles ----------------------------------------------------------------


def test_an_outsiders_catalog_run_and_schedule_are_404(
    owner, outsider, studio_client, catalog, sent
):
    run = _started_run(owner, catalog, rows=1)
    schedule = catalog_schedule_create(actor=owner.principal, catalog=catalog, interval_minutes=60)
    client = studio_client(outsider)
    for method, url in [
        ("get", "/studio/catalogs/spring/"),
        ("post", "/studio/catalogs/spring/import/"),
        ("post", "/studio/catalogs/spring/runs/"),
        ("post", "/studio/catalogs/spring/schedules/"),
        ("get", f"/studio/catalog-runs/{run.pk}/"),
        ("get", f"/studio/catalog-runs/{run.pk}/status/"),
        ("post", f"/studio/catalog-runs/{run.pk}/pause/"),
        ("post", f"/studio/catalog-runs/{run.pk}/cancel/"),
        ("post", f"/studio/catalog-runs/{run.pk}/export/"),
        ("post", f"/studio/schedules/{schedule.pk}/"),
        ("post", f"/studio/schedules/{schedule.pk}/delete/"),
        ("get", f"/studio/review/?run={run.pk}"),
        ("get", f"/studio/review/?product={run.items.get().product_id}"),
    ]:
        response = client.post(url, {"mode": "all"}) if method == "post" else client.get(url)
        assert response.status_code == 404, url
    assert "Spring" not in _text(client.get("/studio/catalogs/"))
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and CatalogSchedule.objects.filter(pk=schedule.pk)


def test_viewers_see_the_catalog_but_not_its_forms(persona, owner, studio_client, catalog):
    viewer = studio_client(persona("viewer"))
    page = _text(viewer.get("/studio/catalogs/spring/"))
    assert "Spring range" in page
    for form in ("upload-form", "run-form", "schedule-form"):
        assert f'data-testid="{form}"' not in page
    assert viewer.post("/studio/catalogs/spring/import/", {"file": csv_file([])}).status_code == 403


# --- the review queue narrowed to a run or a product -------------------------------------------


def test_the_review_queue_filtered_by_run_shows_only_that_runs_images(
    owner, persona, studio_client, catalog, sent
):
    run = _started_run(owner, catalog, rows=2)
    jobs = _run_jobs(run)
    for job in jobs:
        finish(job)
    outside = make_job(owner.org, scores={"passed": True, "score": 0.9})
    other_run = _started_run(owner, catalog, rows=2)  # a second run of the same products
    for job in _run_jobs(other_run):
        finish(job)
    client = studio_client(persona("reviewer"))

    def tiles(query: str) -> set[str]:
        page = _text(client.get(f"/studio/review/{query}"))
        return set(re.findall(r'data-review-tile data-image="([^"]+)"', page))

    run_images = {str(job.images.get().pk) for job in jobs}
    assert str(outside.images.get().pk) in tiles("")
    assert tiles(f"?run={run.pk}") == run_images
    page = _text(client.get(f"/studio/review/?run={run.pk}&min_score="))
    assert 'data-testid="active-filter"' in page and str(run.pk)[:8] in page
    assert f'name="run" value="{run.pk}"' in page  # kept when the other filters change

    product = Product.objects.get(pk=jobs[0].product_ref)
    of_product = tiles(f"?product={product.pk}")
    assert str(jobs[0].images.get().pk) in of_product and len(of_product) == 2  # both runs
    assert tiles(f"?run={run.pk}&product={product.pk}") == {str(jobs[0].images.get().pk)}
    for missing in ("run=00000000-0000-0000-0000-000000000000", "run=not-a-run", "product=999999"):
        assert client.get(f"/studio/review/?{missing}").status_code == 404, missing
