"""Studio fixtures: a test client signed in as a persona, and finished jobs with stored images
and categories with versions, made without a worker. The catalog tests' fixtures (``produce``,
``listing``, a ``catalog`` and ``sent``, the Celery messages recorded instead of sent) are
imported here so the studio's catalog pages are tested on the same data."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.test import Client

from generation import storage
from generation.models import GeneratedImage, GenerationJob, JobStatus
from models_registry.models import BaseModel, BuildStatus, Category, ModelVersion, VersionKind
from tenants.models import Organization
from tests.catalog.conftest import catalog, listing, produce, sent  # noqa: F401
from tests.factories import Persona


@pytest.fixture
def studio_client():  # type: ignore[no-untyped-def]
    """``studio_client(persona)``: a test client with that persona's session (CSRF enforced)."""

    def build(p: Persona | None) -> Client:
        client = Client(enforce_csrf_checks=False)
        if p is not None:
            client.force_login(p.user)
        return client

    return build


def _png(color: tuple[int, int, int] = (200, 80, 40), size: int = 64) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, format="PNG")
    return buffer.getvalue()


def make_job(
    org: Organization,
    *,
    user: object = None,
    category: Category | None = None,
    status: str = JobStatus.SUCCEEDED,
    images: int = 1,
    scores: dict[str, Any] | None = None,
    prompt: str = "a red mug on a white table",
) -> GenerationJob:
    """A finished job with stored images, made without a worker (for page tests)."""
    job = GenerationJob.objects.create(
        organization=org,
        created_by=user,
        category=category,
        params={
            "prompt": prompt,
            "negative_prompt": "",
            "style": "studio",
            "width": 64,
            "height": 64,
            "cfg_scale": 7.0,
            "steps": 4,
            "seed": 42,
            "num_images": images,
            "scheduler": "ddim",
            "family": "tiny",
        },
        prompt=prompt,
        num_images=images,
        batch_key="test",
        status=status,
        attempts=1,
        progress=1.0 if status == JobStatus.SUCCEEDED else 0.3,
    )
    if status != JobStatus.SUCCEEDED:
        return job
    for index in range(images):
        data = _png((40 * index % 255, 120, 200))
        key = storage.image_key(org_id=org.pk, job_id=job.pk, index=index, attempt=1)
        storage.write_object(key, data)
        GeneratedImage.objects.create(
            organization=org,
            job=job,
            index=index,
            attempt=1,
            seed=42 + index,
            storage_key=key,
            sha256=storage.sha256_hex(data),
            size_bytes=len(data),
            width=64,
            height=64,
            scores=scores if scores is not None else {},
        )
    return job


def make_category(org: Organization, *, slug: str = "mugs", versions: int = 2) -> Category:
    """A category with ``versions`` candidate versions on a ready tiny base (rows only)."""
    base, _ = BaseModel.objects.get_or_create(
        name="tiny-rows",
        defaults={"family": "tiny", "status": BuildStatus.READY, "default_params": {}},
    )
    category = Category.objects.create(organization=org, slug=slug, name=slug.title())
    for n in range(versions):
        ModelVersion.objects.create(
            organization=org,
            category=category,
            base=base,
            kind=VersionKind.LORA,
            label=f"run {n + 1}",
            artifact_uri=f"test://{slug}/{n}",
            sha256=f"{n:064d}",
            metrics={"clip_score": 0.2 + n / 10},
        )
    return category


@pytest.fixture
def job_a(persona):  # type: ignore[no-untyped-def]
    editor = persona("editor")
    return make_job(editor.org, user=editor.user, images=2)


@pytest.fixture
def category_a(persona):  # type: ignore[no-untyped-def]
    return make_category(persona("editor").org)
