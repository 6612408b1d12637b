"""The worker's real model path: the registry's artifact cache, the per-process pipeline cache and
the LoRA swap. A category's production LoRA changes the image; a base-model job that runs after
it on the same warm pipeline gets the base image again (the adapter is turned off)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from generation import services, storage, worker
from generation.models import GenerationJob, JobStatus

PROMPT = {"prompt": "a red apple", "steps": 2, "seed": 5}


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path):
    settings.EASEL_MODEL_CACHE_DIR = tmp_path / "model-cache"
    settings.EASEL_DEVICE = "cpu"


def _run(owner, **data) -> GenerationJob:
    from unittest import mock

    with mock.patch("generation.tasks.enqueue_generation"):
        job = services.generation_job_create(actor=owner.principal, data=PROMPT | data)
    worker.generation_run(job_id=job.id)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error_message
    return job


def _pixels(job: GenerationJob) -> np.ndarray:
    data = storage.read_object(job.images.get().storage_key)
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=int)


def test_category_lora_is_swapped_in_and_turned_off_for_base_jobs(owner, produce_lora):
    before = _run(owner, model="tiny")
    lora = _run(owner, category="produce")
    after = _run(owner, model="tiny")
    assert lora.model_version_id == produce_lora.pk
    meta = storage.read_png_metadata(storage.read_object(lora.images.get().storage_key))
    assert meta["model_version"] == f"version:{produce_lora.pk}"
    assert np.abs(_pixels(lora) - _pixels(before)).max() > 10  # the adapter changed the image
    assert np.abs(_pixels(after) - _pixels(before)).max() <= 2  # and is off again for the base
