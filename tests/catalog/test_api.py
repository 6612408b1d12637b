"""The catalog API: create, import with its row report, products with filters, runs with counts
and controls, exports, and another organization's objects as 404s on every route."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest

from catalog import runs
from catalog.exports import catalog_export_build, escape_cell, zip_name
from catalog.models import CatalogRun, Product
from generation import storage
from generation.models import GeneratedImage
from generation.review_services import image_review_decide

from .conftest import csv_file, good_rows
from .test_runs import _jobs, finish

pytestmark = pytest.mark.django_db


def _upload(client, data, **extra):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/catalogs/spring/import", {"file": data, **extra})


def test_create_and_a_duplicate_slug_is_a_409(owner, client_for, listing):
    client = client_for(owner)
    response = client.post(
        "/api/v1/catalogs", {"slug": "autumn", "default_template": "listing"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["links"]["import"] == "/api/v1/catalogs/autumn/import"
    again = client.post("/api/v1/catalogs", {"slug": "autumn"}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "catalog_exists"
    missing = client.post(
        "/api/v1/catalogs", {"slug": "winter", "default_template": "nope"}, format="json"
    )
    assert missing.status_code == 400
    assert "No template 'nope'" in str(missing.json()["error"]["fields"]["default_template"])


def test_import_answers_with_counts_and_every_rejected_row(owner, client_for, catalog):
    rows = [*good_rows(3), "SKU-009,Steak,meat,listing,red", ",x,produce,listing,red"]
    response = _upload(client_for(owner), csv_file(rows))
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["rows_total"], body["rows_accepted"], body["rows_rejected"]) == (5, 3, 2)
    assert [(r["line"], r["sku"]) for r in body["rejections"]] == [(5, "SKU-009"), (6, "")]
    listed = client_for(owner).get(body["links"]["rejections"]).json()["results"]
    assert [r["line"] for r in listed] == [5, 6]


def test_a_file_that_cannot_be_read_is_a_400_and_a_huge_one_a_413(
    owner, client_for, catalog, settings
):
    client = client_for(owner)
    bad = io.BytesIO(b"sku,name\nA,B\n")
    bad.name = "p.csv"
    response = _upload(client, bad)
    assert response.status_code == 400
    assert "lacks the column(s) category" in response.json()["error"]["message"]
    unknown = io.BytesIO(b"x")
    unknown.name = "p.xlsx"
    assert _upload(client, unknown).json()["error"]["fields"] == {"format": "Use csv or jsonl."}
    settings.EASEL_CATALOG_MAX_FILE_BYTES = 10
    response = _upload(client, csv_file(good_rows(1)))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert not Product.objects.exists()


def test_products_filter_by_published_and_changed(owner, client_for, catalog, sent, persona):
    client = client_for(owner)
    _upload(client, csv_file(good_rows(3)))
    run = runs.catalog_run_create(actor=owner.principal, catalog=catalog, mode="all")
    runs.catalog_run_start(run_id=run.pk)
    job = finish(_jobs(run)[0])
    image_review_decide(
        actor=persona("reviewer").principal, image=job.images.get(), status="approved"
    )
    sku = Product.objects.get(pk=job.product_ref).sku
    rows = good_rows(3)
    rows[int(sku[-3:]) - 1] = rows[int(sku[-3:]) - 1].replace("red", "blue")
    _upload(client, csv_file(rows))

    def skus(**params):  # type: ignore[no-untyped-def]
        response = client.get("/api/v1/catalogs/spring/products", params)
        assert response.status_code == 200, response.content
        return [p["sku"] for p in response.json()["results"]]

    assert skus(published="true") == [sku] == skus(changed="true")
    assert len(skus(published="false")) == 2
    assert skus(q="apple 2") == ["SKU-002"]
    assert client.get("/api/v1/catalogs/spring/products", {"published": "maybe"}).status_code == 400
    [product] = client.get("/api/v1/catalogs/spring/products", {"sku": sku}).json()["results"]
    assert product["changed"] is True and product["image_url"].endswith("/download")


def test_runs_show_counts_and_are_controlled(owner, client_for, catalog, sent, persona):
    client = client_for(owner)
    _upload(client, csv_file(good_rows(2)))
    response = client.post(
        "/api/v1/catalog-runs", {"catalog": "spring", "mode": "all"}, format="json"
    )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "pending" and response["Location"] == body["links"]["self"]
    runs.catalog_run_start(run_id=body["id"])
    detail = client.get(body["links"]["self"]).json()
    assert detail["progress"]["counts"]["submitted"] == 2 and detail["items_total"] == 2
    assert client.get(body["links"]["export"]).status_code == 409
    assert client.post(body["links"]["resume"]).status_code == 409
    assert client.post(body["links"]["pause"]).json()["status"] == "paused"
    assert client.post(body["links"]["cancel"]).json()["status"] == "canceled"
    items = client.get(body["links"]["items"], {"status": "canceled"}).json()["results"]
    assert {i["sku"] for i in items} == {"SKU-001", "SKU-002"}
    viewer = client_for(persona("viewer"))
    assert viewer.get(body["links"]["self"]).status_code == 200
    assert viewer.post(body["links"]["pause"]).status_code == 403
    assert (
        viewer.post(
            "/api/v1/catalog-runs", {"catalog": "spring", "mode": "all"}, format="json"
        ).status_code
        == 403
    )


def test_the_export_has_the_manifest_and_the_approved_images(
    owner, client_for, catalog, sent, persona, settings
):
    settings.EASEL_PUBLIC_URL = "https://easel.example.com"
    client = client_for(owner)
    rows = good_rows(2) + ["=HYPERLINK(1),Melon,produce,listing,green"]
    _upload(client, csv_file(rows))
    run = runs.catalog_run_create(actor=owner.principal, catalog=catalog, mode="all")
    runs.catalog_run_start(run_id=run.pk)
    jobs = _jobs(run)
    for job in jobs:
        finish(job)
    formula = next(j for j in jobs if Product.objects.get(pk=j.product_ref).sku.startswith("="))
    image = GeneratedImage.objects.get(job_id=formula.pk)
    storage.write_object(image.storage_key, b"\x89PNG fake bytes")
    image_review_decide(actor=persona("reviewer").principal, image=image, status="approved")
    runs.catalog_run_advance(run_id=run.pk)
    assert CatalogRun.objects.get(pk=run.pk).status == "completed"
    catalog_export_build(run_id=run.pk)
    links = client.get(f"/api/v1/catalog-runs/{run.pk}/export").json()
    manifest = storage.read_object(f"orgs/{owner.org.pk}/catalog-runs/{run.pk}/manifest.csv")
    table = list(csv.DictReader(io.StringIO(manifest.decode())))
    skus = [Product.objects.get(pk=j.product_ref).sku for j in jobs]
    assert [r["sku"] for r in table] == [escape_cell(sku) for sku in skus]
    melon = next(r for r in table if r["name"] == "Melon")
    assert melon["sku"] == "'=HYPERLINK(1)"
    assert melon["review_status"] == "approved" and melon["status"] == "succeeded"
    assert melon["image_url"] == f"https://easel.example.com/api/v1/images/{image.pk}/download"
    assert {r["review_status"] for r in table if r["name"] != "Melon"} == {"pending"}
    archive = storage.read_object(f"orgs/{owner.org.pk}/catalog-runs/{run.pk}/images.zip")
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        assert z.namelist() == ["HYPERLINK_1.png"]
        assert z.read("HYPERLINK_1.png") == b"\x89PNG fake bytes"
    assert set(links) == {"manifest_url", "zip_url", "expires_at", "exported_at"}


def test_cells_and_names_are_made_safe():
    assert [escape_cell(v) for v in ("=1+1", "+1", "-1", "@x", "\tx", "ok", None, 3)] == [
        "'=1+1",
        "'+1",
        "'-1",
        "'@x",
        "'\tx",
        "ok",
        "",
        "3",
    ]
    used: set[str] = set()
    assert [zip_name(s, used) for s in ("A/B", "A:B", "../..", "é")] == [
        "A_B.png",
        "A_B-2.png",
        "product.png",
        "product-2.png",
    ]


def test_another_orgs_catalog_import_run_and_export_are_404s(
    owner, outsider, client_for, catalog, sent
):
    imported = _upload(client_for(owner), csv_file(good_rows(1))).json()
    run = runs.catalog_run_create(actor=owner.principal, catalog=catalog, mode="all")
    theirs = client_for(outsider)
    for method, url in [
        ("get", "/api/v1/catalogs/spring"),
        ("get", "/api/v1/catalogs/spring/products"),
        ("post", "/api/v1/catalogs/spring/import"),
        ("get", imported["links"]["self"]),
        ("get", imported["links"]["rejections"]),
        ("get", f"/api/v1/catalog-runs/{run.pk}"),
        ("get", f"/api/v1/catalog-runs/{run.pk}/items"),
        ("post", f"/api/v1/catalog-runs/{run.pk}/pause"),
        ("post", f"/api/v1/catalog-runs/{run.pk}/cancel"),
        ("get", f"/api/v1/catalog-runs/{run.pk}/export"),
        ("post", f"/api/v1/catalog-runs/{run.pk}/export"),
    ]:
        assert getattr(theirs, method)(url).status_code == 404, (method, url)
    assert (
        theirs.post(
            "/api/v1/catalog-runs", {"catalog": "spring", "mode": "all"}, format="json"
        ).status_code
        == 404
    )
    assert theirs.get("/api/v1/catalogs").json()["results"] == []
    assert theirs.get("/api/v1/catalog-runs").json()["results"] == []
