"""Images the worker stores carry valid content credentials, XMP and (when the organization asks)
a watermark; the download path serves them unchanged; a private template's prompt is nowhere in
the files; ``POST /api/v1/provenance/verify`` reports all of it, and a changed byte fails it.

The worker runs in-process on the tiny pipeline (as in tests/generation/test_worker.py).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured
from PIL import Image

from generation import services, storage, worker
from generation.models import JobStatus
from generation.template_services import prompt_template_create
from provenance.engine import content_credentials
from provenance.engine.manifest import GENERATION_ASSERTION, TRAINED_ALGORITHMIC_MEDIA, assertion
from provenance.engine.xmp import PNG_KEY, xmp_fields
from provenance.services import provenance_settings_set
from provenance.verification import image_verify

from .conftest import actions_of, flipped, jpeg, png_chunks

pytestmark = pytest.mark.usefixtures("local_pipeline")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def generate(owner, tiny_base_model, enqueued):  # type: ignore[no-untyped-def]
    def run(**data):  # type: ignore[no-untyped-def]
        request = {"prompt": "a red apple", "model": "tiny", "steps": 2, "seed": 11} | data
        request = {k: v for k, v in request.items() if v is not None}  # prompt=None: a template
        job = services.generation_job_create(actor=owner.principal, data=request)
        worker.generation_run(job_id=job.id)
        job.refresh_from_db()
        assert job.status == JobStatus.SUCCEEDED, (job.error_code, job.error_message)
        return job

    return run


def _verify(client, data: bytes, name: str = "image.png"):  # type: ignore[no-untyped-def]
    upload = io.BytesIO(data)
    upload.name = name
    response = client.post("/api/v1/provenance/verify", {"file": upload}, format="multipart")
    return response


def test_a_generated_image_verifies_with_the_expected_assertions(generate, owner, client_for):
    job = generate()
    image = job.images.get()
    data = storage.read_object(image.storage_key)
    assert storage.sha256_hex(data) == image.sha256 and len(data) == image.size_bytes

    body = _verify(client_for(owner), data).json()
    credentials = body["content_credentials"]
    assert (credentials["valid"], credentials["trusted"], credentials["failures"]) == (
        True,
        True,
        [],
    )
    assert credentials["generator"] == "Easel 0.1.0"
    [created] = credentials["actions"]
    assert created["action"] == "c2pa.created"
    assert created["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    generation = credentials["generation"]
    assert generation["image"] == str(image.id) and generation["job"] == str(job.id)
    assert generation["model"] == {"family": "tiny", "base": "tiny", "version": None}
    assert generation["prompt"] == "a red apple" and generation["seed"] == 11
    assert generation["url"] == f"https://easel.example.com/api/v1/images/{image.id}"
    assert body["metadata"] == {
        "digital_source_type": TRAINED_ALGORITHMIC_MEDIA,
        "credit": f"{owner.org.name} (generated with Easel)",
        "creator_tool": "Easel 0.1.0",
        "image_id": str(image.id),
        "image_url": f"https://easel.example.com/api/v1/images/{image.id}",
    }
    # 64×64: too small for a watermark, and the organization did not ask for one.
    assert body["watermark"]["checked"] is False and "65,536 pixels" in body["watermark"]["reason"]
    # The PNG's own text chunks are still there for any PNG tool.
    assert storage.read_png_metadata(data)["prompt"] == "a red apple"


def test_one_modified_byte_makes_verification_fail(generate, owner, client_for):
    data = storage.read_object(generate().images.get().storage_key)
    client = client_for(owner)
    # A well-formed PNG whose prompt chunk lost one bit ("a red apple" → "a red appld").
    offset = next(o for t, o, _ in png_chunks(data) if data[o : o + 7] == b"prompt\x00")
    at = data.index(b"a red apple", offset) + len(b"a red appl") - offset
    edited = flipped(data, b"iTXt", at=at, fix_crc=True, start=offset)
    assert b"a red appld" in edited and len(edited) == len(data)
    credentials = _verify(client, edited).json()["content_credentials"]
    assert credentials["present"] and not credentials["valid"] and not credentials["hash_valid"]
    assert "assertion.dataHash.mismatch" in {f["code"] for f in credentials["failures"]}
    # A changed pixel byte left with its old CRC is not even a readable PNG.
    broken = _verify(client, flipped(data, b"IDAT", at=10))
    assert broken.status_code == 400 and "corrupt" in broken.json()["error"]["message"]


def test_the_thumbnail_is_signed_as_a_resize_of_the_image(generate):
    image = generate().images.get()
    report = content_credentials.read(
        storage.read_object(image.thumbnail_key), mime_type="image/webp"
    )
    assert report.valid
    assert [a["action"] for a in actions_of(report.manifest)] == ["c2pa.created", "c2pa.resized"]
    generation = assertion(report.manifest, GENERATION_ASSERTION)
    assert generation["image"] == str(image.id)


def test_the_download_path_serves_the_signed_bytes_unchanged(generate, owner, client_for):
    image = generate().images.get()
    client = client_for(owner)
    redirect = client.get(f"/api/v1/images/{image.id}/download")
    assert redirect.status_code == 302
    url = redirect["Location"]
    if url.startswith("http://testserver/"):  # local storage: the signed-token view
        served = client.get(url)
        data, content_type = b"".join(served.streaming_content), served["Content-Type"]
    else:  # S3: the presigned GET
        served = requests.get(url, timeout=30)
        data, content_type = served.content, served.headers["Content-Type"]
    assert content_type == "image/png"
    assert data == storage.read_object(image.storage_key)
    assert image_verify(data=data).credentials.valid


def test_a_private_templates_prompt_is_absent_from_every_file(generate, owner, client_for):
    secret = "zanzibar velvet backdrop"
    prompt_template_create(
        actor=owner.principal,
        application="hero",
        text=f"a {{colour}} box on a {secret}",
        negative_prompt="grainy fingerprints",
    )
    provenance_settings_set(org=owner.org, private_templates=["hero"])
    job = generate(prompt=None, template="hero", variables={"colour": "teal"})
    image = job.images.get()
    assert secret in job.prompt  # the job itself keeps it, for its organization
    png = storage.read_object(image.storage_key)
    thumbnail = storage.read_object(image.thumbnail_key)
    for data in (png, thumbnail):
        assert secret.encode() not in data and b"grainy" not in data
    chunks = storage.read_png_metadata(png)
    assert "prompt" not in chunks and "negative_prompt" not in chunks
    assert "prompt" not in json.loads(chunks["parameters"])
    generation = _verify(client_for(owner), png).json()["content_credentials"]["generation"]
    assert generation["prompt_withheld"] is True and "prompt" not in generation
    assert generation["template"] == {"application": "hero", "version": 1}


def test_a_public_templates_prompt_and_version_are_recorded(generate, owner):
    prompt_template_create(actor=owner.principal, application="listing", text="a {colour} pear")
    job = generate(prompt=None, template="listing", variables={"colour": "green"})
    report = image_verify(data=storage.read_object(job.images.get().storage_key)).credentials
    generation = assertion(report.manifest, GENERATION_ASSERTION)
    assert generation["template"] == {"application": "listing", "version": 1}
    assert generation["prompt"] == job.prompt and "green pear" in job.prompt


def test_the_watermark_survives_jpeg_q90_and_names_the_image(generate, owner, outsider, client_for):
    provenance_settings_set(org=owner.org, watermark=True)
    image = generate(width=256, height=256).images.get()
    png = storage.read_object(image.storage_key)
    recompressed = jpeg(Image.open(io.BytesIO(png)), 90)

    body = _verify(client_for(owner), recompressed, name="product.jpg").json()
    assert body["format"] == "image/jpeg"
    assert body["content_credentials"]["present"] is False  # re-encoding drops the manifest
    assert body["watermark"] == {
        "checked": True,
        "detected": True,
        "id": image.id.hex[:12],
        "image": str(image.id),
        "reason": "",
    }
    # Another organization learns the id the mark carries, never which image it is.
    theirs = _verify(client_for(outsider), recompressed, name="product.jpg").json()
    assert theirs["watermark"]["id"] == image.id.hex[:12] and theirs["watermark"]["image"] is None


def test_without_the_watermark_setting_no_mark_is_embedded(generate):
    image = generate(width=256, height=256).images.get()
    reading = image_verify(data=storage.read_object(image.storage_key)).watermark
    assert reading.checked and reading.id is None


def test_an_upload_that_is_not_an_image_is_a_400_naming_why(owner, client_for, persona):
    response = _verify(client_for(owner), b"<html>hello</html>", name="page.html")
    assert response.status_code == 400
    assert "not a PNG, JPEG or WebP image" in response.json()["error"]["fields"]["file"]
    lying = _verify(client_for(owner), jpeg(Image.new("RGB", (8, 8))), name="photo.png")
    assert lying.status_code == 400 and "the content is JPEG" in lying.json()["error"]["message"]
    # Any role may verify.
    viewer = _verify(client_for(persona("viewer")), jpeg(Image.new("RGB", (8, 8))), "a.jpg")
    assert viewer.status_code == 200 and viewer.json()["content_credentials"]["present"] is False


def test_an_upload_over_the_size_limit_is_refused_unread(owner, client_for, settings):
    settings.EASEL_TRAINING_MAX_IMAGE_BYTES = 100
    response = _verify(client_for(owner), jpeg(Image.new("RGB", (64, 64))), name="a.jpg")
    assert response.status_code == 400
    assert "larger than the limit of 100 bytes" in response.json()["error"]["message"]


def test_signing_on_without_a_certificate_fails_the_job_saying_what_to_set(
    settings, owner, tiny_base_model, enqueued
):
    settings.EASEL_PROVENANCE_CERT_CHAIN = settings.EASEL_PROVENANCE_PRIVATE_KEY = ""
    settings.EASEL_PROVENANCE_DEV_CERT = False
    from generation.provenance import job_provenance

    job = services.generation_job_create(
        actor=owner.principal, data={"prompt": "a pear", "model": "tiny", "steps": 2}
    )
    with pytest.raises(ImproperlyConfigured, match="EASEL_PROVENANCE_CERT_CHAIN"):
        job_provenance(job)


def test_on_embedded_defaults_a_development_chain_is_made_and_used(generate, settings):
    settings.EASEL_PROVENANCE_CERT_CHAIN = settings.EASEL_PROVENANCE_PRIVATE_KEY = ""
    settings.EASEL_PROVENANCE_TRUST_ANCHORS = ""
    settings.EASEL_PROVENANCE_DEV_CERT = True
    image = generate().images.get()
    assert (Path(settings.EASEL_PROVENANCE_DEV_CERT_DIR) / "root.pem").exists()
    report = image_verify(data=storage.read_object(image.storage_key)).credentials
    assert report.valid and report.trusted  # the development root is this installation's
    assert report.manifest["signature_info"]["issuer"] == "Easel development"


def test_with_signing_off_images_are_stored_without_credentials_but_with_xmp(generate, settings):
    settings.EASEL_PROVENANCE_SIGN = False
    data = storage.read_object(generate().images.get().storage_key)
    assert not image_verify(data=data).credentials.present
    packet = storage.read_png_metadata(data)[PNG_KEY]
    assert xmp_fields(packet)["digital_source_type"] == TRAINED_ALGORITHMIC_MEDIA


def test_verifying_never_imports_torch_in_the_web_process(generate, tmp_path):
    path = tmp_path / "signed.png"
    path.write_bytes(storage.read_object(generate().images.get().storage_key))
    code = (
        "import json, os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE',"
        " 'config.settings.test'); import django; django.setup();"
        "import config.urls; from provenance.verification import image_verify;"
        f"r = image_verify(data=open({str(path)!r}, 'rb').read());"
        "print(json.dumps([r.credentials.valid, r.watermark.checked, 'torch' in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [True, False, False]


def test_verifying_writes_nothing_and_ignores_other_fields(generate, owner, client_for):
    from django.apps import apps

    data = storage.read_object(generate().images.get().storage_key)

    def rows() -> dict[str, int]:
        return {m._meta.label: m.objects.count() for m in apps.get_models()}

    before = rows()
    upload = io.BytesIO(data)
    upload.name = "image.png"
    response = client_for(owner).post(
        "/api/v1/provenance/verify",
        {"file": upload, "organization": 1, "status": "succeeded", "is_staff": True},
        format="multipart",
    )
    assert response.status_code == 200 and response.json()["content_credentials"]["valid"]
    assert rows() == before
