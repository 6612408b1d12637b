"""Download links are scoped and expiring. A link is a bearer credential for one stored object (like
a presigned URL): it is handed out only by the organization-scoped image endpoints (another
organization gets their 404: test_tenant_sealing), names exactly one key, cannot be re-pointed
or forged without the server's secret, and stops working after ``EASEL_DOWNLOAD_URL_TTL``, on
local storage and on S3 alike. The clock is moved with time_machine, never slept on."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.conf import settings
from django.core import signing
from django.test import Client
from django.utils import timezone

from generation import storage
from tests.conftest import require_service
from tests.factories import make_image_row

from .conftest import World

pytestmark = pytest.mark.django_db
PNG = b"\x89PNG\r\n\x1a\n-acme-bytes"


@pytest.fixture
def local_storage(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.EASEL_STORAGE = "local"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path), "base_url": "/media/"},
        },
    }
    return tmp_path


def _link_from_the_api(world: World, client_for) -> str:  # type: ignore[no-untyped-def]
    storage.write_object(world.image.storage_key, PNG)
    response = client_for(world.owner).get(f"/api/v1/images/{world.image.pk}/download")
    assert response.status_code == 302
    return response["Location"]


def test_a_local_link_works_until_its_ttl_and_is_refused_a_second_later(
    world, local_storage, client_for
):
    ttl = int(settings.AWS_QUERYSTRING_EXPIRE)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        link = _link_from_the_api(world, client_for)
        assert urlsplit(link).path.startswith("/api/v1/images/file/")
        clock.shift(timedelta(seconds=ttl - 1))
        served = Client().get(link)
        assert served.status_code == 200 and b"".join(served.streaming_content) == PNG
        assert served["X-Content-Type-Options"] == "nosniff"
        clock.shift(timedelta(seconds=2))
        expired = Client().get(link)
    assert expired.status_code == 404
    assert "expired" in expired.json()["error"]["message"]


def test_a_local_link_names_one_key_and_needs_the_servers_secret(world, local_storage):
    mine = storage.download_url(world.image.storage_key).url
    token = mine.rsplit("/", 1)[1]
    assert storage.key_for_download_token(token) == world.image.storage_key
    # Another image of the same job: its own token, never this one re-used.
    sibling = make_image_row(world.job, index=1)
    assert storage.download_url(sibling.storage_key).url != mine
    # A token for B's guess at A's key, signed without the server's secret.
    forged = signing.TimestampSigner(key="not-the-secret", salt="easel.generation.image-download")
    guessed = forged.sign_object({"k": world.image.storage_key})
    response = Client().get(f"/api/v1/images/file/{guessed}")
    assert response.status_code == 404 and "not valid" in response.json()["error"]["message"]
    # The signing salt is the image links' own: a value signed for another purpose is refused.
    other_purpose = signing.TimestampSigner(salt="django.core.signing").sign_object(
        {"k": world.image.storage_key}
    )
    assert Client().get(f"/api/v1/images/file/{other_purpose}").status_code == 404


@pytest.fixture
def s3_object() -> str:  # type: ignore[misc]
    if settings.EASEL_STORAGE != "s3" or not settings.AWS_S3_ENDPOINT_URL:
        require_service("S3", "EASEL_STORAGE is not 's3' with AWS_S3_ENDPOINT_URL set")
    key = f"orgs/1/generations/{uuid.uuid4()}/0-1.png"
    storage.write_object(key, PNG)
    yield key
    storage.delete_object(key)


def _fetch(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our own S3
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_presigned_s3_link_names_one_key_and_the_store_refuses_it_once_expired(s3_object):
    ttl = int(settings.AWS_QUERYSTRING_EXPIRE)
    fresh = storage.download_url(s3_object).url
    parts = urlsplit(fresh)
    assert parts.path.endswith(s3_object)
    assert parse_qs(parts.query)["X-Amz-Expires"] == [str(ttl)]
    assert _fetch(fresh) == 200
    # Signed as if TTL + 1 minute ago: the object store itself refuses it now.
    with time_machine.travel(timezone.now() - timedelta(seconds=ttl + 60), tick=False):
        stale = storage.download_url(s3_object).url
    assert _fetch(stale) == 403
    # Re-pointing a valid link at another key breaks its signature.
    other = fresh.replace(s3_object, s3_object.replace("0-1.png", "1-1.png"))
    assert _fetch(other) == 403
