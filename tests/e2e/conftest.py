"""Browser fixtures: a real headless Chromium (Debian's chromium + chromedriver) driven by
Selenium against pytest-django's live server, and a real Celery worker process.

The worker fixtures are the integration tests' own: ``celery_worker_process`` (generation and
training) and ``catalog_worker`` (the catalog test's ``worker``: queues interactive, bulk and
default); only the Redis database differs, so these tests and those never take each other's
messages.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import require_service
from tests.integration.test_catalog_e2e import worker as catalog_worker  # noqa: F401
from tests.integration.test_generation_e2e import celery_worker_process  # noqa: F401

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
E2E_REDIS_DB = 12
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def isolated_broker() -> Iterator[str]:
    """Point this process's Celery producer at a Redis database only our worker listens on."""
    from django.db import connection

    from config.celery_app import app

    if connection.vendor != "postgresql":
        require_service("PostgreSQL", "DATABASE_URL is not PostgreSQL")
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        require_service("Redis", "CELERY_BROKER_URL is not redis://")
    if settings.EASEL_STORAGE != "s3" or not settings.AWS_S3_ENDPOINT_URL:
        require_service("S3", "EASEL_STORAGE is not 's3' with AWS_S3_ENDPOINT_URL set")
    import redis

    url = settings.CELERY_BROKER_URL.rsplit("/", 1)[0] + f"/{E2E_REDIS_DB}"
    redis.Redis.from_url(url).flushdb()
    previous = app.conf.broker_url, app.conf.broker_write_url
    # broker_write_url too: once resolved it no longer follows broker_url, and producers use it.
    # Only drop the app's pool references; closing them would leave the producer a closed pool.
    app.conf.broker_url = app.conf.broker_write_url = url
    app._pool = None
    app.amqp._producer_pool = None
    yield url
    app.conf.broker_url, app.conf.broker_write_url = previous
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def browser() -> Iterator[object]:
    """A fresh headless Chromium with its own profile, closed after the test."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        require_service("Chromium", f"{CHROMIUM} or {CHROMEDRIVER} is missing")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="easel-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1366,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def screenshot(browser, tmp_path):  # type: ignore[no-untyped-def]
    """``screenshot("review-queue")`` saves review-queue.png: under docs/screenshots/ when
    ``EASEL_UPDATE_SCREENSHOTS=1`` (to refresh the README's pictures), else in the test's tmp dir
    so a test run leaves the working tree clean."""
    folder = SCREENSHOTS if os.environ.get("EASEL_UPDATE_SCREENSHOTS") == "1" else tmp_path

    def save(name: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        browser.save_screenshot(str(path))
        return path

    return save
