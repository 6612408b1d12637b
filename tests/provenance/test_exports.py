"""A catalog run's export ZIP carries each approved image byte for byte as stored, so its content
credentials and XMP still verify: the path a retailer's feed takes."""

from __future__ import annotations

import io
import zipfile

import pytest

from catalog import runs
from catalog.exports import catalog_export_build
from generation import storage, worker
from generation.models import GenerationJob, JobStatus
from generation.review_services import image_review_decide
from provenance.engine.manifest import GENERATION_ASSERTION, TRAINED_ALGORITHMIC_MEDIA, assertion
from provenance.verification import image_verify
from tests.catalog.conftest import csv_file, good_rows

pytestmark = pytest.mark.usefixtures("local_pipeline")


def test_the_export_zip_keeps_the_content_credentials(owner, client_for, catalog, sent, persona):
    upload = client_for(owner).post(
        "/api/v1/catalogs/spring/import", {"file": csv_file(good_rows(1))}
    )
    assert upload.status_code == 201, upload.content
    run = runs.catalog_run_create(actor=owner.principal, catalog=catalog, mode="all")
    runs.catalog_run_start(run_id=run.pk)
    [job] = GenerationJob.objects.filter(run_item__run=run)
    worker.generation_run(job_id=job.id)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error_message
    image = job.images.get()
    image_review_decide(actor=persona("reviewer").principal, image=image, status="approved")
    runs.catalog_run_advance(run_id=run.pk)
    catalog_export_build(run_id=run.pk)

    archive = storage.read_object(f"orgs/{owner.org.pk}/catalog-runs/{run.pk}/images.zip")
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        assert z.namelist() == ["SKU-001.png"]
        exported = z.read("SKU-001.png")
    assert exported == storage.read_object(image.storage_key)
    result = image_verify(data=exported)
    assert result.credentials.valid and result.credentials.trusted
    generation = assertion(result.credentials.manifest, GENERATION_ASSERTION)
    assert generation["image"] == str(image.id)
    assert generation["template"] == {"application": "listing", "version": 1}
    assert result.metadata["digital_source_type"] == TRAINED_ALGORITHMIC_MEDIA
    assert result.metadata["image_id"] == str(image.id)
