"""``/api/v1/trainings``: photos validated before anything is queued (each bad file named with its
reason), normalized and stored with their hashes; who may train; cancel; tenant isolation."""

from __future__ import annotations

import io
from unittest import mock

import pytest
from PIL import Image

from generation import storage
from models_registry.models import Category
from tenants.models import UsageRecord
from training.models import TrainingJob, TrainingStatus

pytestmark = pytest.mark.django_db


def png(size: tuple[int, int] = (48, 40), colour: tuple[int, int, int] = (0, 200, 220)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def upload(name: str, data: bytes):  # type: ignore[no-untyped-def]
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)


@pytest.fixture
def category(owner, tiny_base_model):  # type: ignore[no-untyped-def]
    return Category.objects.create(
        organization=owner.org, slug="stars", name="Stars", base_model=tiny_base_model
    )


@pytest.fixture
def sent():  # type: ignore[no-untyped-def]
    with mock.patch("training.services.enqueue_training") as enqueue:
        yield enqueue


def body(*files, **fields):  # type: ignore[no-untyped-def]
    return {
        "category": "stars",
        "rare_token": "sks",
        "class_prompt": "a star on a white background",
        "params": '{"max_steps": 20}',
        "images": list(files),
        **fields,
    }


def good_files(n: int = 4):  # type: ignore[no-untyped-def]
    return [upload(f"star-{i}.png", png(colour=(0, 200 - i, 220))) for i in range(n)]


def test_a_training_is_queued_with_its_photos_normalized_and_stored(
    owner, client_for, category, sent
):
    response = client_for(owner).post("/api/v1/trainings", body(*good_files()), format="multipart")
    assert response.status_code == 202, response.json()
    job = TrainingJob.objects.get()
    data = response.json()
    assert (
        data["status"] == "pending"
        and data["instance_prompt"] == "sks a star on a white background"
    )
    assert data["params"]["max_steps"] == 20 and data["params"]["resolution"] == 32
    assert response["Location"] == f"/api/v1/trainings/{job.pk}"
    assert [i["file_name"] for i in data["images"]] == [f"star-{i}.png" for i in range(4)]
    stored = Image.open(io.BytesIO(storage.read_object(job.images.first().storage_key)))
    assert stored.size == (32, 32) and stored.mode == "RGB"  # centre-cropped and resized
    assert job.images.first().width == 48  # as uploaded
    sent.assert_called_once()
    reserved = UsageRecord.objects.get(reference=job.quota_reference, kind="gpu_seconds")
    assert reserved.state == "reserved" and reserved.amount > 0


def test_each_bad_photo_is_named_with_its_reason_and_nothing_is_queued(
    owner, client_for, category, sent, settings
):
    settings.EASEL_TRAINING_MAX_IMAGE_BYTES = 50_000
    bomb = io.BytesIO()
    Image.new("1", (9000, 9000)).save(bomb, format="PNG")  # 81 Mpx in a few kB
    files = [
        *good_files(3),
        upload("notes.txt", b"not an image at all"),
        upload("tiny.png", png((16, 16))),
        upload("bomb.png", bomb.getvalue()),
        upload("cut.png", png((64, 64))[:-40]),
        upload("huge.png", b"\x89PNG" + b"0" * 60_000),
    ]
    response = client_for(owner).post("/api/v1/trainings", body(*files), format="multipart")
    assert response.status_code == 400
    problems = response.json()["error"]["fields"]["images"]
    text = " | ".join(problems)
    assert "notes.txt: not a PNG, JPEG or WebP image." in text
    assert "tiny.png: 16×16 is smaller than the training resolution (32 px" in text
    assert "bomb.png: 9000×9000 is 81,000,000 pixels, above the limit" in text
    assert "it was not decoded" in text
    assert "cut.png: the image is truncated or corrupt" in text
    assert "huge.png: larger than the limit of 50,000 bytes." in text
    assert not any(p.startswith("star-") for p in problems)
    assert not TrainingJob.objects.exists() and not sent.called


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"rare_token": "Not A Token"}, "rare_token"),
        ({"class_prompt": " "}, "class_prompt"),
        ({"instance_prompt": "a star without the token"}, "instance_prompt"),
        ({"params": '{"max_steps": 0}'}, "max_steps"),
        ({"params": '{"learning_rate": "fast"}'}, "learning_rate"),
        ({"params": '{"colour": "red"}'}, "colour"),
        ({"params": "{not json"}, "params"),
        ({"mode": "dream"}, "mode"),
    ],
)
def test_bad_fields_are_a_400_naming_them(owner, client_for, category, sent, fields, field):
    response = client_for(owner).post(
        "/api/v1/trainings", body(*good_files(), **fields), format="multipart"
    )
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["fields"]
    assert not TrainingJob.objects.exists()


def test_too_few_photos_are_refused(owner, client_for, category, sent):
    response = client_for(owner).post("/api/v1/trainings", body(*good_files(2)), format="multipart")
    assert response.status_code == 400
    assert "Send 3 to 30 photos, not 2." in str(response.json()["error"]["fields"]["images"])


def test_editors_train_reviewers_may_not(persona, client_for, category, sent):
    assert (
        client_for(persona("editor"))
        .post("/api/v1/trainings", body(*good_files()), format="multipart")
        .status_code
        == 202
    )
    assert (
        client_for(persona("reviewer"))
        .post("/api/v1/trainings", body(*good_files()), format="multipart")
        .status_code
        == 403
    )


def test_an_outsider_gets_404_for_the_job_its_images_and_its_category(
    owner, outsider, client_for, category, sent
):
    job_id = (
        client_for(owner)
        .post("/api/v1/trainings", body(*good_files()), format="multipart")
        .json()["id"]
    )
    other = client_for(outsider)
    assert other.get(f"/api/v1/trainings/{job_id}").status_code == 404
    assert other.post(f"/api/v1/trainings/{job_id}/cancel").status_code == 404
    assert other.get("/api/v1/trainings").json()["results"] == []
    # Their own category named "stars" does not exist: training it is a 404 too.
    assert (
        other.post("/api/v1/trainings", body(*good_files()), format="multipart").status_code == 404
    )


def test_a_pending_training_is_canceled_at_once_and_its_quota_released(
    owner, client_for, category, sent
):
    client = client_for(owner)
    job_id = client.post("/api/v1/trainings", body(*good_files()), format="multipart").json()["id"]
    response = client.post(f"/api/v1/trainings/{job_id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == TrainingStatus.CANCELED
    job = TrainingJob.objects.get(pk=job_id)
    assert UsageRecord.objects.get(reference=job.quota_reference, kind="gpu_seconds").state == (
        "released"
    )
    assert client.post(f"/api/v1/trainings/{job_id}/cancel").status_code == 200  # idempotent
