"""The client and the ``easel`` command against a live server and a real Celery worker
(PostgreSQL, Redis, S3): generate → wait → download, with the job's signed webhook verified by the
client; a catalog CSV upload → run → export; a training upload of a folder → progress → a
candidate version, promoted and rolled back. The tiny model keeps each job to seconds."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile

import pytest
from easel_client import webhooks
from PIL import Image

from tests.integration.test_generation_e2e import _wait

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WAIT = 240


def test_generate_wait_and_download_with_the_client_and_the_cli(
    owner, easel, run_cli, tiny_base_model, worker, receiver, settings, tmp_path
):
    from tenants.webhooks import webhook_endpoint_create

    settings.EASEL_WEBHOOK_ALLOW_PRIVATE = True
    hook_url, received = receiver
    _endpoint, secret = webhook_endpoint_create(
        actor=owner.principal, url=hook_url, events=["job.succeeded"]
    )

    job = easel.generations.create("a red apple on a white table", model="tiny", steps=2, seed=7)
    assert job.status == "pending" and job.images == []
    seen: list[str] = []
    job = easel.generations.wait(job.id, timeout=WAIT, on_progress=lambda j: seen.append(j.status))
    assert job.succeeded, job.error
    assert seen[-1] == "succeeded" and len(seen) >= 2
    (path,) = easel.generations.download(job, tmp_path / "client")
    assert path.name == f"{job.id}-0.png"
    with Image.open(path, formats=["PNG"]) as png:
        assert png.size == (64, 64)
        assert png.text["easel:job"] == job.id and png.text["seed"] == "7"

    # Repaint the middle of the downloaded image: upload it and a mask, inpaint, keep the rest.
    source = easel.uploads.create(path)
    uploaded = run_cli("--json", "upload", str(path))
    assert uploaded.returncode == 0, uploaded.stderr
    assert json.loads(uploaded.stdout)["sha256"] == source.sha256
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    masked = easel.uploads.create(("mask.png", buffer.getvalue()), kind="mask")
    assert (source.kind, masked.kind, source.width) == ("image", "mask", 64)
    varied = easel.generations.create(
        "a red apple on a white table", model="tiny", steps=2, seed=7, mode="inpaint",
        source_upload=source.id, mask_upload=masked.id,
    )  # fmt: skip
    varied = easel.generations.wait(varied.id, timeout=WAIT)
    assert varied.succeeded and varied.raw["source_upload"] == source.id, varied.error

    result = run_cli(
        "--json", "generate", "a green pear", "--model", "tiny", "--steps", "2",
        "--seed", "3", "--download", str(tmp_path / "cli"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["status"] == "succeeded" and document["prompt"] == "a green pear"
    (saved,) = document["files"]
    with open(saved, "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == document["images"][0]["sha256"]

    # Every job announced itself; the client's verifier accepts what the server sent.
    _wait(lambda: len(received) >= 3, "three job.succeeded deliveries", worker)
    events = [webhooks.verify(secret, headers, body) for headers, body in received]
    assert {e["data"]["id"] for e in events} == {job.id, varied.id, document["id"]}


def _products_csv(path, rows):  # type: ignore[no-untyped-def]
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["sku", "name", "category", "colour"])
        writer.writerows(rows)
    return path


def test_catalog_upload_run_and_export_with_the_cli(
    owner, persona, easel, run_cli, tiny_base_model, worker, tmp_path
):
    from catalog.models import Product
    from generation.models import GeneratedImage
    from generation.review_services import image_review_decide

    easel.categories.create("produce", "Produce", base_model="tiny")
    template = easel.templates.create(
        "listing", "a {colour} {name} on a white background", default_params={"steps": 2}
    )
    assert (template.version, template.variables) == (1, ["colour", "name"])
    rows = [("SKU-1", "Apple", "produce", "red"), ("SKU-2", "Pear", "produce", "green")]
    rows += [("SKU-3", "Plum", "produce", "purple"), ("SKU-4", "Steak", "meat", "red")]
    products = _products_csv(tmp_path / "products.csv", rows)

    created = run_cli("--json", "catalog", "create", "spring", "--default-template", "listing")
    assert created.returncode == 0, created.stderr
    upload = run_cli("--json", "catalog", "upload", "spring", str(products))
    assert upload.returncode == 0, upload.stderr
    report = json.loads(upload.stdout)
    assert (report["rows_created"], report["rows_rejected"]) == (3, 1)
    assert "unknown category 'meat'" in report["rejections"][0]["reason"]
    assert easel.catalogs.get("spring").product_count == 3
    catalog_rows = {p.sku for p in easel.catalogs.products("spring", page_size=2)}
    assert catalog_rows == {"SKU-1", "SKU-2", "SKU-3"}  # three rows over two pages

    run = run_cli("--json", "catalog", "run", "spring", "--mode", "all", "--wait")
    assert run.returncode == 0, run.stderr
    finished = json.loads(run.stdout)
    assert finished["status"] == "completed" and finished["items_total"] == 3
    counts = finished["progress"]["counts"]
    assert counts["succeeded"] + counts["failed_quality"] == 3, counts

    exported = run_cli(
        "--json", "catalog", "export", finished["id"], "--download", str(tmp_path / "export")
    )
    assert exported.returncode == 0, exported.stderr
    files = json.loads(exported.stdout)
    with open(files["manifest"], newline="") as fh:
        manifest = list(csv.DictReader(fh))
    assert sorted(row["sku"] for row in manifest) == ["SKU-1", "SKU-2", "SKU-3"]
    assert all(row["template"] == "listing" for row in manifest)
    with zipfile.ZipFile(files["zip"]) as archive:
        assert archive.namelist() == []  # nothing approved yet

    # A reviewer approves one image; the client rebuilds the export and downloads it again.
    pear = Product.objects.get(sku="SKU-2")
    image = GeneratedImage.objects.filter(is_result=True, job__product_ref=pear.pk).first()
    image_review_decide(actor=persona("reviewer").principal, image=image, status="approved")
    easel.catalog_runs.rebuild_export(finished["id"])
    manifest_path, zip_path = easel.catalog_runs.download_export(
        finished["id"], tmp_path / "again", timeout=WAIT
    )
    with zipfile.ZipFile(zip_path) as archive:
        assert archive.namelist() == ["SKU-2.png"]
        assert hashlib.sha256(archive.read("SKU-2.png")).hexdigest() == image.sha256
    approved = list(csv.DictReader(io.StringIO(manifest_path.read_text())))
    assert {r["sku"] for r in approved if r["review_status"] == "approved"} == {"SKU-2"}


def _star(i: int) -> bytes:
    out = io.BytesIO()
    image = Image.new("RGB", (40, 40), (250, 250, 248))
    image.paste((0, 200, 220), (12 + i, 12, 28 + i, 28))
    image.save(out, format="PNG")
    return out.getvalue()


def test_train_from_a_folder_follows_progress_to_a_candidate_that_the_cli_promotes(
    easel, run_cli, tiny_base_model, worker, tmp_path
):
    easel.categories.create("stars", "Stars", base_model="tiny")
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        (folder / f"star-{i}.png").write_bytes(_star(i))
    (folder / "notes.txt").write_text("not a photo: skipped")
    uploaded: list[tuple[int, int]] = []

    job = easel.trainings.create(
        category="stars",
        rare_token="sks",
        class_prompt="a star",
        photos=folder,
        params={"max_steps": 4, "checkpoint_every": 2, "num_class_images": 2, "rank": 4},
        on_upload=lambda sent, total: uploaded.append((sent, total)),
    )
    total = sum(len(_star(i)) for i in range(3))
    assert uploaded[-1] == (total, total)
    assert [i["file_name"] for i in job.raw["images"]] == [f"star-{i}.png" for i in range(3)]
    steps: list[int] = []
    job = easel.trainings.wait(job.id, timeout=WAIT, on_progress=lambda j: steps.append(j.step))
    assert job.succeeded, job.error
    assert steps == sorted(steps) and steps[-1] == job.total_steps == 4
    version = job.output_version
    assert version is not None

    promoted = run_cli("--json", "models", "promote", "stars", str(version))
    assert promoted.returncode == 0, promoted.stderr
    assert json.loads(promoted.stdout)["aliases"]["production"] == version
    # Its first promotion has nothing before it: the API's refusal reaches a script as exit 1.
    refused = run_cli("--json", "models", "rollback", "stars")
    assert (refused.returncode, refused.stdout) == (1, "")
    error = json.loads(refused.stderr)["error"]
    assert (error["status"], error["code"]) == (400, "invalid")
    assert "Nothing to roll back to" in error["fields"]["alias"]
    assert easel.categories.get("stars").aliases["production"] == version
