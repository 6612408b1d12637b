"""Stored images are reachable only through signed, expiring links: never by their storage path,
in any configuration (here the `make run` one: local storage, DEBUG on)."""

from __future__ import annotations

import importlib
import time
from unittest import mock

import pytest
from django.test import Client
from django.urls import clear_url_caches

from generation import storage

PNG = b"\x89PNG\r\n\x1a\n-not-really-a-png"


@pytest.fixture
def local_debug(settings, tmp_path):  # type: ignore[no-untyped-def]
    """`make run`'s storage and DEBUG, with the URL map rebuilt for them (it reads DEBUG)."""
    settings.DEBUG = True
    settings.EASEL_STORAGE = "local"
    settings.MEDIA_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path), "base_url": "/media/"},
        },
    }
    importlib.reload(importlib.import_module(settings.ROOT_URLCONF))
    clear_url_caches()
    yield tmp_path
    settings.DEBUG = False
    importlib.reload(importlib.import_module(settings.ROOT_URLCONF))
    clear_url_caches()


@pytest.fixture
def stored_key(local_debug) -> str:  # type: ignore[no-untyped-def]
    key = storage.image_key(org_id=1, job_id="0f0e0d0c", index=0, attempt=1)
    storage.write_object(key, PNG)
    assert (local_debug / key).exists()
    return key


def test_raw_media_path_is_404(stored_key):
    response = Client().get(f"/media/{stored_key}")
    assert response.status_code == 404


def test_signed_link_serves_the_stored_file(stored_key):
    url = storage.download_url(stored_key).url
    assert url.startswith("/api/v1/images/file/")
    response = Client().get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PNG
    assert response["Content-Type"] == "image/png"
    assert response["Cache-Control"] == "private, max-age=60"


def test_tampered_signed_link_is_refused(stored_key):
    token = storage.download_url(stored_key).url.rsplit("/", 1)[1]
    other = storage.image_key(org_id=2, job_id="0f0e0d0c", index=0, attempt=1)
    forged_payload = storage.download_url(other).url.rsplit("/", 1)[1].split(":", 1)[0]
    forged = forged_payload + ":" + token.split(":", 1)[1]
    response = Client().get(f"/api/v1/images/file/{forged}")
    assert response.status_code == 404
    assert "not valid" in response.json()["error"]["message"]


def test_expired_signed_link_is_refused(stored_key, settings):
    url = storage.download_url(stored_key).url
    later = time.time() + settings.AWS_QUERYSTRING_EXPIRE + 5
    with mock.patch("django.core.signing.time.time", return_value=later):
        response = Client().get(url)
    assert response.status_code == 404
    assert "expired" in response.json()["error"]["message"]
