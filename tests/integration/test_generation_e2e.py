"""End to end: API key → POST /api/v1/generations → Redis → a real Celery worker process →
PostgreSQL + S3 → the PNG with its metadata in the bucket → a signed webhook on a local receiver.

The worker is ``celery -A config worker -Q interactive,bulk,default --pool solo`` started as a
subprocess against this test's database (pytest-django's ``test_<name>``; rows are committed
because the test is transactional) and a Redis database of its own, so no other worker on the
machine can take its messages. The tiny model keeps the whole run to seconds of compute.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from PIL import Image

from ..conftest import require_service

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[2]
# A Redis database no other worker listens on (another number for a second suite run at once).
ISOLATED_REDIS_DB = int(os.environ.get("EASEL_TEST_BROKER_DB", "11"))
WAIT_SECONDS = 180


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).received.append((dict(self.headers.items()), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return


@pytest.fixture
def receiver() -> Iterator[tuple[str, list]]:
    _Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hooks", _Receiver.received
    server.shutdown()


def _services() -> str:
    if connection.vendor != "postgresql":
        require_service("PostgreSQL", "DATABASE_URL is not PostgreSQL")
    broker = settings.CELERY_BROKER_URL
    if not broker.startswith("redis://"):
        require_service("Redis", "CELERY_BROKER_URL is not redis://")
    if settings.EASEL_STORAGE != "s3" or not settings.AWS_S3_ENDPOINT_URL:
        require_service("S3", "EASEL_STORAGE is not 's3' with AWS_S3_ENDPOINT_URL set")
    return broker.rsplit("/", 1)[0] + f"/{ISOLATED_REDIS_DB}"


@pytest.fixture
def isolated_broker() -> Iterator[str]:
    """Point this process's Celery producer at a Redis database no other worker listens on."""
    from config.celery_app import app

    url = _services()
    import redis

    redis.Redis.from_url(url).flushdb()
    previous = app.conf.get("broker_write_url")

    def switch(to: str | None) -> None:
        # Publishing uses broker_write_url when set (broker_url cannot be overridden through the
        # CELERY_ namespace); the connection and producer pools are cached on first use, so drop
        # them and the next publish connects to ``to``.
        app.conf.broker_write_url = to
        app._pool = None
        app.amqp._producer_pool = None

    switch(url)
    yield url
    switch(previous)


def start_celery_worker(
    *, broker: str, tmp_path: Path, queues: str, name: str, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """``celery -A config worker -Q <queues> --pool solo`` against this test's database and
    ``broker``; its log is ``process.log_path``."""
    db = connection.settings_dict
    database_url = (
        f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )
    environment = os.environ | {
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker,
        "EASEL_MODEL_CACHE_DIR": str(tmp_path / "model-cache"),
        "EASEL_WEBHOOK_ALLOW_PRIVATE": "1",
        "EASEL_VAR_DIR": str(tmp_path / "var"),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "2",
        **(env or {}),
    }
    log_path = tmp_path / f"{name}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "config",
            "worker",
            "-Q",
            queues,
            "--pool",
            "solo",
            "-n",
            f"{name}-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "info",
        ],
        cwd=REPO,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()  # the child holds its own descriptor
    process.log_path = log_path  # type: ignore[attr-defined]
    return process


def stop_worker(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def celery_worker_process(isolated_broker, tmp_path) -> Iterator[subprocess.Popen]:
    process = start_celery_worker(
        broker=isolated_broker,
        tmp_path=tmp_path,
        queues="interactive,bulk,train,default",
        name="e2e",
    )
    yield process
    stop_worker(process)


def _wait(predicate, what: str, worker: subprocess.Popen):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if worker.poll() is not None:
            break
        time.sleep(0.5)
    log = worker.log_path.read_text(errors="replace")[-4000:]  # type: ignore[attr-defined]
    pytest.fail(f"Timed out waiting for {what}. Worker log tail:\n{log}")


def test_generation_runs_on_a_real_worker_and_lands_in_s3_with_a_signed_webhook(
    owner, client_for, tiny_base_model, receiver, celery_worker_process, settings
):
    import boto3

    from tenants.webhooks import verify_signature, webhook_endpoint_create

    settings.EASEL_WEBHOOK_ALLOW_PRIVATE = True
    url, received = receiver
    _endpoint, secret = webhook_endpoint_create(
        actor=owner.principal, url=url, events=["job.succeeded", "job.failed"]
    )
    client = client_for(owner)
    response = client.post(
        "/api/v1/generations",
        {"prompt": "a red apple on a white table", "model": "tiny", "seed": 42, "steps": 3},
        format="json",
        HTTP_IDEMPOTENCY_KEY="e2e-1",
    )
    assert response.status_code == 202, response.content
    location = response["Location"]

    def finished():  # type: ignore[no-untyped-def]
        job = client.get(location).json()
        return job if job["status"] in {"succeeded", "failed", "canceled"} else None

    job = _wait(finished, "the job to finish", celery_worker_process)
    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 1 and len(job["images"]) == 1
    image = job["images"][0]

    from generation.models import GeneratedImage

    row = GeneratedImage.objects.get(id=image["id"])
    s3 = boto3.client(
        "s3",
        endpoint_url=settings.AWS_S3_ENDPOINT_URL,
        aws_access_key_id=settings.AWS_ACCESS_KEY_ID,
        aws_secret_access_key=settings.AWS_SECRET_ACCESS_KEY,
        region_name=settings.AWS_S3_REGION_NAME,
    )
    data = s3.get_object(Bucket=settings.AWS_STORAGE_BUCKET_NAME, Key=row.storage_key)[
        "Body"
    ].read()
    with Image.open(io.BytesIO(data), formats=["PNG"]) as png:
        png.load()
        assert png.size == (64, 64)
        assert png.text["prompt"] == "a red apple on a white table"
        assert png.text["seed"] == "42"
        assert png.text["easel:job"] == job["id"]
        assert json.loads(png.text["parameters"])["steps"] == 3
    assert row.storage_key.startswith(f"orgs/{owner.org.pk}/generations/{job['id']}/")
    assert "X-Amz-Signature=" in image["url"]

    _wait(lambda: received, "the webhook delivery", celery_worker_process)
    headers, body = received[0]
    assert verify_signature(secret, headers, body)
    event = json.loads(body)
    assert event["type"] == "job.succeeded"
    assert event["data"]["id"] == job["id"]
    assert event["data"]["images"][0]["sha256"] == row.sha256
