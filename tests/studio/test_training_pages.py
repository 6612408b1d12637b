"""Studio training pages: an editor starts a job from uploaded photos, a refused photo is shown
inline with its name and reason (and nothing is queued), and another organization's job and its
validation images are 404."""

from __future__ import annotations

import html
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from models_registry.models import Category
from tests.training.test_api import png
from training.models import TrainingJob, ValidationImage

pytestmark = pytest.mark.django_db


@pytest.fixture
def category(owner, tiny_base_model):  # type: ignore[no-untyped-def]
    return Category.objects.create(
        organization=owner.org, slug="stars", name="Stars", base_model=tiny_base_model
    )


def form(*files):  # type: ignore[no-untyped-def]
    return {
        "category": "stars",
        "rare_token": "sks",
        "class_prompt": "a star",
        "max_steps": "10",
        "images": list(files),
    }


def photos(n: int = 3) -> list[SimpleUploadedFile]:
    return [SimpleUploadedFile(f"star-{i}.png", png()) for i in range(n)]


def test_an_editor_starts_a_training_from_the_page(persona, studio_client, category):
    editor = persona("editor")
    with mock.patch("training.services.enqueue_training") as sent:
        response = studio_client(editor).post("/studio/training/", form(*photos()))
    job = TrainingJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/studio/training/{job.pk}/"
    assert sent.called and job.params["max_steps"] == 10
    page = studio_client(editor).get(f"/studio/training/{job.pk}/").content.decode()
    assert "step 0 of 10" in page and "star-0.png" in page


def test_a_refused_photo_is_shown_inline_and_nothing_is_queued(persona, studio_client, category):
    editor = persona("editor")
    bad = SimpleUploadedFile("menu.pdf", b"%PDF-1.4 not a photo")
    with mock.patch("training.services.enqueue_training") as sent:
        response = studio_client(editor).post("/studio/training/", form(*photos(), bad))
    assert response.status_code == 400
    page = html.unescape(response.content.decode())
    assert "menu.pdf: not a PNG, JPEG or WebP image." in page
    assert not TrainingJob.objects.exists() and not sent.called


def test_reviewers_see_the_page_but_cannot_start_a_training(persona, studio_client, category):
    reviewer = persona("reviewer")
    page = studio_client(reviewer).get("/studio/training/").content.decode()
    assert 'data-testid="training-form"' not in page
    assert studio_client(reviewer).post("/studio/training/", form(*photos())).status_code == 403


def test_another_orgs_training_and_its_validation_images_are_404(
    owner, outsider, studio_client, category
):
    from training.services import training_job_create

    with mock.patch("training.services.enqueue_training"):
        job = training_job_create(
            actor=owner.principal,
            category=category,
            files=[(f"s{i}.png", png()) for i in range(3)],
            rare_token="sks",
            class_prompt="a star",
        )
    image = ValidationImage.objects.create(
        organization=owner.org, job=job, step=1, prompt="p", seed=0, storage_key="x.png"
    )
    client = studio_client(outsider)
    assert client.get(f"/studio/training/{job.pk}/").status_code == 404
    assert client.get(f"/studio/training/{job.pk}/status/").status_code == 404
    assert client.post(f"/studio/training/{job.pk}/cancel/").status_code == 404
    assert client.get(f"/studio/training/validation/{image.pk}/").status_code == 404
    assert str(job.pk)[:8] not in client.get("/studio/training/").content.decode()
