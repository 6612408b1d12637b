"""Object storage through django-storages' S3 backend against a real S3 server (SeaweedFS)."""

from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError
from django.conf import settings
from django.core.files.base import ContentFile

from ..conftest import require_service

pytestmark = pytest.mark.integration


@pytest.fixture
def s3_settings() -> dict[str, str]:
    if settings.EASEL_STORAGE != "s3" or not settings.AWS_S3_ENDPOINT_URL:
        require_service("S3", "EASEL_STORAGE is not 's3' with AWS_S3_ENDPOINT_URL set")
    return {
        "access_key": settings.AWS_ACCESS_KEY_ID,
        "secret_key": settings.AWS_SECRET_ACCESS_KEY,
        "bucket_name": settings.AWS_STORAGE_BUCKET_NAME,
        "endpoint_url": settings.AWS_S3_ENDPOINT_URL,
        "region_name": settings.AWS_S3_REGION_NAME,
    }


def test_file_round_trips_through_the_s3_backend(s3_settings):
    from django.core.files.storage import default_storage
    from storages.backends.s3 import S3Storage

    assert isinstance(default_storage, S3Storage)
    name = f"tests/{uuid.uuid4().hex}.bin"
    payload = uuid.uuid4().bytes * 1000
    saved = default_storage.save(name, ContentFile(payload))
    try:
        assert saved == name
        assert default_storage.exists(name)
        with default_storage.open(name, "rb") as fh:
            assert fh.read() == payload
        assert default_storage.size(name) == len(payload)
        url = default_storage.url(name)
        assert "X-Amz-Signature=" in url and "X-Amz-Expires=" in url
    finally:
        default_storage.delete(name)
    assert not default_storage.exists(name)


def test_wrong_secret_is_refused(s3_settings):
    from storages.backends.s3 import S3Storage

    wrong = S3Storage(**(s3_settings | {"secret_key": "not-the-secret"}))
    with pytest.raises(ClientError) as excinfo:
        wrong.save(f"tests/{uuid.uuid4().hex}.txt", ContentFile(b"nope"))
    assert excinfo.value.response["Error"]["Code"] in {"SignatureDoesNotMatch", "AccessDenied"}
