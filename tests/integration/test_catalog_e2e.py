"""Catalogs end to end on a real Celery worker, PostgreSQL, Redis and S3 (SeaweedFS):

- import 50 rows with 3 bad ones → 47 products and a report naming the 3 lines → a ``missing``
  run ends with every item succeeded or failed_quality → approve 10 → a second ``missing`` run
  generates for the other 37 only → edit 5 rows and re-import → a ``changed`` run generates
  exactly those 5 → the export manifest and ZIP in S3 match, and ``catalog_run.completed`` is
  delivered;
- while a run of thousands of products is queued, another organization's interactive job starts
  ahead of the bulk jobs queued before it.

The worker consumes ``interactive,bulk,default`` (the catalog's own tasks run on ``default``);
the ``listing`` template asks for 2 denoising steps so the tiny model keeps each job short.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterator

import pytest
from django.utils import timezone

from generation import storage
from generation.models import GeneratedImage, GenerationJob, JobPriority
from generation.review_services import image_review_decide
from generation.template_services import prompt_template_create
from models_registry import services as registry

from .test_generation_e2e import _wait, start_celery_worker, stop_worker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FINISHED_ITEMS = {"succeeded", "failed_quality"}


@pytest.fixture
def worker(isolated_broker, tmp_path) -> Iterator:  # type: ignore[no-untyped-def]
    process = start_celery_worker(
        broker=isolated_broker,
        tmp_path=tmp_path,
        queues="interactive,bulk,default",
        name="catalog",
        env={"EASEL_WORKER_DRAIN_SECONDS": "0"},
    )
    yield process
    stop_worker(process)


def _setup(persona, base_model) -> None:  # type: ignore[no-untyped-def]
    registry.category_create(
        actor=persona.principal, slug="produce", name="Produce", base_model=base_model
    )
    prompt_template_create(
        actor=persona.principal,
        application="listing",
        text="a {colour} {name} on a white background",
        default_params={"steps": 2},
    )


def _csv(rows: list[tuple[str, str, str]]) -> io.BytesIO:
    lines = ["sku,name,category,template,colour"]
    lines += [f"{sku},{name},produce,listing,{colour}" for sku, name, colour in rows]
    data = io.BytesIO(("\n".join(lines) + "\n").encode())
    data.name = "products.csv"
    return data


def _upload(client, rows):  # type: ignore[no-untyped-def]
    response = client.post("/api/v1/catalogs/spring/import", {"file": _csv(rows)})
    assert response.status_code == 201, response.content
    return response.json()


def _run(client, mode: str, worker) -> dict:  # type: ignore[no-untyped-def]
    response = client.post(
        "/api/v1/catalog-runs", {"catalog": "spring", "mode": mode}, format="json"
    )
    assert response.status_code == 202, response.content
    location = response["Location"]

    def completed():  # type: ignore[no-untyped-def]
        run = client.get(location).json()
        return run if run["status"] == "completed" else None

    return _wait(completed, f"the {mode} run to complete", worker)


def _skus_of(run: dict, client) -> set[str]:  # type: ignore[no-untyped-def]
    items = client.get(run["links"]["items"], {"page_size": 500}).json()["results"]
    return {i["sku"] for i in items}


def test_import_run_review_rerun_and_export(
    owner, persona, client_for, tiny_base_model, worker, receiver, settings
):
    from tenants.webhooks import verify_signature, webhook_endpoint_create

    settings.EASEL_WEBHOOK_ALLOW_PRIVATE = True
    hook_url, received = receiver
    _endpoint, secret = webhook_endpoint_create(
        actor=owner.principal, url=hook_url, events=["catalog_run.completed"]
    )
    _setup(owner, tiny_base_model)
    client = client_for(owner)
    assert client.post("/api/v1/catalogs", {"slug": "spring"}, format="json").status_code == 201

    rows = [(f"SKU-{i:02d}", f"Apple {i}", "red") for i in range(1, 48)]
    bad = [
        "SKU-90,Steak,meat,listing,red",
        ",No sku,produce,listing,red",
        "SKU-91,Pear,produce,listing,",
    ]
    data = _csv(rows)
    text = data.getvalue().decode().splitlines()
    for offset, line in zip((5, 20, 40), bad, strict=True):
        text.insert(offset, line)
    upload = io.BytesIO(("\n".join(text) + "\n").encode())
    upload.name = "products.csv"
    response = client.post("/api/v1/catalogs/spring/import", {"file": upload})
    assert response.status_code == 201, response.content
    report = response.json()
    assert (report["rows_total"], report["rows_created"], report["rows_rejected"]) == (50, 47, 3)
    assert [r["line"] for r in report["rejections"]] == [6, 21, 41]
    assert "unknown category 'meat'" in report["rejections"][0]["reason"]
    assert report["rejections"][1]["reason"] == "missing SKU"
    assert "needs colour" in report["rejections"][2]["reason"]

    first = _run(client, "missing", worker)
    counts = first["progress"]["counts"]
    assert first["items_total"] == 47
    assert sum(counts[s] for s in FINISHED_ITEMS) == 47, counts
    assert GenerationJob.objects.filter(priority=JobPriority.BULK).count() == 47

    reviewer = persona("reviewer").principal
    approved = list(
        GeneratedImage.objects.filter(job__status="succeeded", is_result=True)
        .select_related("job")
        .order_by("job__product_ref")[:10]
    )
    assert len(approved) == 10
    for image in approved:
        image_review_decide(actor=reviewer, image=image, status="approved")
    approved_skus = {
        p["sku"]
        for p in client.get("/api/v1/catalogs/spring/products", {"published": "true"}).json()[
            "results"
        ]
    }
    assert len(approved_skus) == 10

    second = _run(client, "missing", worker)
    assert second["items_total"] == 37
    assert _skus_of(second, client) == {sku for sku, _, _ in rows} - approved_skus

    edited = sorted(approved_skus)[:5]
    rows = [(s, n, "gold" if s in edited else c) for s, n, c in rows]
    reimport = _upload(client, rows)
    assert (reimport["rows_updated"], reimport["rows_unchanged"]) == (5, 42)
    changed = _run(client, "changed", worker)
    assert _skus_of(changed, client) == set(edited)
    assert GenerationJob.objects.count() == 47 + 37 + 5

    # The first run's export, rebuilt now that 10 of its images are approved.
    export_url = first["links"]["export"]
    assert client.post(export_url).status_code == 202

    def export_ready():  # type: ignore[no-untyped-def]
        response = client.get(export_url)
        return response.json() if response.status_code == 200 else None

    links = _wait(export_ready, "the rebuilt export", worker)
    assert "X-Amz-Signature=" in links["manifest_url"]
    from catalog.exports import export_keys
    from catalog.models import CatalogRun

    manifest_key, zip_key = export_keys(CatalogRun.objects.get(pk=first["id"]))
    manifest = list(csv.DictReader(io.StringIO(storage.read_object(manifest_key).decode())))
    assert len(manifest) == 47
    by_sku = {row["sku"]: row for row in manifest}
    assert {s for s, r in by_sku.items() if r["review_status"] == "approved"} == approved_skus
    assert all(r["status"] in FINISHED_ITEMS for r in manifest)
    assert all(r["template"] == "listing" and r["template_version"] == "1" for r in manifest)
    for row in manifest:
        if row["image_id"]:
            assert row["image_url"].endswith(f"/api/v1/images/{row['image_id']}/download")
    with zipfile.ZipFile(io.BytesIO(storage.read_object(zip_key))) as archive:
        assert sorted(archive.namelist()) == sorted(f"{s}.png" for s in approved_skus)

    # Each completed run announced itself once, signed.
    _wait(lambda: len(received) >= 3, "three catalog_run.completed deliveries", worker)
    bodies = []
    for headers, body in received:
        assert verify_signature(secret, headers, body)
        bodies.append(json.loads(body))
    assert {b["data"]["id"] for b in bodies} == {first["id"], second["id"], changed["id"]}
    assert all(b["type"] == "catalog_run.completed" for b in bodies)


def test_an_interactive_job_of_another_org_starts_ahead_of_a_queued_bulk_run(
    owner, outsider, client_for, tiny_base_model, worker, settings
):
    _setup(owner, tiny_base_model)
    client = client_for(owner)
    assert client.post("/api/v1/catalogs", {"slug": "spring"}, format="json").status_code == 201
    rows = [(f"SKU-{i:04d}", f"Apple {i}", "red") for i in range(3000)]
    assert _upload(client, rows)["rows_created"] == 3000
    run = client.post("/api/v1/catalog-runs", {"catalog": "spring", "mode": "all"}, format="json")
    assert run.status_code == 202, run.content
    run_url = run["Location"]

    def bulk_started():  # type: ignore[no-untyped-def]
        return GenerationJob.objects.filter(priority="bulk", started_at__isnull=False).exists()

    _wait(bulk_started, "the run's first bulk job to start", worker)
    assert client.get(run_url).json()["items_total"] == 3000
    submitted_at = timezone.now()
    queued = GenerationJob.objects.filter(priority="bulk", started_at__isnull=True)
    assert queued.exists()  # bulk jobs are waiting when the interactive one comes in
    response = client_for(outsider).post(
        "/api/v1/generations",
        {"prompt": "a pear", "model": "tiny", "steps": 2, "seed": 1},
        format="json",
    )
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]

    def interactive_started():  # type: ignore[no-untyped-def]
        return GenerationJob.objects.filter(pk=job_id, started_at__isnull=False).first()

    interactive = _wait(interactive_started, "the interactive job to start", worker)
    # Bulk jobs that were already queued when it came in started after it.
    overtaken = GenerationJob.objects.filter(
        priority="bulk", created_at__lt=submitted_at, started_at__gt=interactive.started_at
    )
    waiting = GenerationJob.objects.filter(
        priority="bulk", created_at__lt=submitted_at, started_at__isnull=True
    )
    assert overtaken.exists() or waiting.exists(), "every queued bulk job started before it"
    progress = client.get(run_url).json()["progress"]
    assert progress["counts"]["queued"] > 2500  # the run is far from done: the cap held it back
    assert client.post(f"{run_url}/cancel").status_code == 200
