"""Faults on purpose, against real worker processes, PostgreSQL, Redis and S3 (SeaweedFS):

- ``kill -9`` of a GPU worker in the middle of a batch, then a new worker: every job finishes
  exactly once — one set of images in the bucket, one usage charge, one webhook delivery id;
- SIGTERM to a worker mid-batch: it finishes the batch before it stops, nothing lost;
- storage cut part-way through a job's writes (a proxy in front of SeaweedFS resets every
  connection on the job's second PUT): retried with backoff, then failed with a clear error,
  nothing published, and no object left once the collector ran;
- the database cut in the middle of a request (a proxy in front of PostgreSQL resets the
  connection when the job's INSERT comes): a 503 in the API's error format, no partial rows;
- Redis (a server of the test's own) restarted while a catalog run is in flight, its queued
  messages lost: the run completes with every item accounted for;
- ``Prefer: wait`` answered by a real worker.

The beat tasks (the generation reaper, the catalog sweep) are called from the test, as beat would
call them, so a test waits for leases, not for beat's clock.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from generation.models import GeneratedImage, GenerationJob, JobStatus, PendingObject
from generation.services import generation_jobs_reap
from generation.storage import job_prefix, storage_leftovers_collect
from tenants.models import AuditEvent, UsageRecord, WebhookDelivery

from ..factories import make_persona
from .faults import TcpProxy, free_port, redis_server
from .test_generation_e2e import REPO, _wait, start_celery_worker, stop_worker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

QUEUES = "interactive,bulk,default"
SHORT_LEASES = {
    "EASEL_CANCEL_POLL_SECONDS": "0",  # progress after every step, so a test sees mid-batch
    "EASEL_JOB_LEASE_SECONDS": "4",
    "EASEL_JOB_HEARTBEAT_SECONDS": "1",
    "EASEL_WORKER_DRAIN_SECONDS": "0",
    "EASEL_BATCH_SIZE": "4",
}


def _s3():  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=settings.AWS_S3_ENDPOINT_URL,
        aws_access_key_id=settings.AWS_ACCESS_KEY_ID,
        aws_secret_access_key=settings.AWS_SECRET_ACCESS_KEY,
        region_name=settings.AWS_S3_REGION_NAME,
    )


def _bucket_keys(job: GenerationJob) -> set[str]:
    prefix = job_prefix(org_id=job.organization_id, job_id=job.id)
    listing = _s3().list_objects_v2(Bucket=settings.AWS_STORAGE_BUCKET_NAME, Prefix=prefix)
    return {item["Key"] for item in listing.get("Contents", [])}


def _submit(client, n: int, *, slow: bool = False) -> list[str]:  # type: ignore[no-untyped-def]
    """``n`` jobs; ``slow`` ones (100 steps at 128×128) keep a batch denoising for seconds."""
    extra = {"steps": 100, "width": 128, "height": 128} if slow else {"steps": 2}
    ids = []
    for i in range(n):
        response = client.post(
            "/api/v1/generations",
            {"prompt": f"a red apple {i}", "model": "tiny", "seed": i, **extra},
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"fault-{i}-{time.monotonic_ns()}",
        )
        assert response.status_code in (200, 202), response.content
        ids.append(response.json()["id"])
    return ids


def _jobs(ids: list[str]) -> list[GenerationJob]:
    return list(GenerationJob.objects.filter(id__in=ids).order_by("created_at"))


def _all(ids: list[str], *statuses: str) -> bool:
    return GenerationJob.objects.filter(id__in=ids, status__in=statuses).count() == len(ids)


def _denoising(ids: list[str]) -> bool:
    """Every job running and its batch part-way through the denoising loop."""
    running = GenerationJob.objects.filter(
        id__in=ids, status=JobStatus.RUNNING, progress__gt=0, progress__lt=0.9
    )
    return running.count() == len(ids)


def _wait_closely(predicate, what: str, worker) -> None:  # type: ignore[no-untyped-def]
    """``_wait`` for a window of a second or two: polls every 20 ms."""
    deadline = time.monotonic() + 300
    while not predicate():
        assert worker.poll() is None, worker.log_path.read_text()[-3000:]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_kill_9_mid_batch_then_a_new_worker_finishes_every_job_exactly_once(
    owner, client_for, tiny_base_model, isolated_broker, tmp_path, receiver, settings
):
    from tenants.webhooks import webhook_endpoint_create

    settings.EASEL_WEBHOOK_ALLOW_PRIVATE = True
    url, received = receiver
    webhook_endpoint_create(actor=owner.principal, url=url, events=["job.succeeded"])
    ids = _submit(client_for(owner), 4, slow=True)
    first = start_celery_worker(
        broker=isolated_broker, tmp_path=tmp_path, queues=QUEUES, name="doomed", env=SHORT_LEASES
    )
    try:
        _wait_closely(lambda: _denoising(ids), "the batch to be denoising", first)
    finally:
        first.kill()  # SIGKILL: no cleanup, no ack
        first.wait(timeout=10)
    assert not GenerationJob.objects.filter(id__in=ids, status=JobStatus.SUCCEEDED).exists()
    second = start_celery_worker(
        broker=isolated_broker, tmp_path=tmp_path, queues=QUEUES, name="heir", env=SHORT_LEASES
    )
    try:
        # As beat would: the dead worker's leases run out and the reaper hands the jobs over.
        _wait(lambda: generation_jobs_reap()["requeued"] or None, "the reaper", second)
        _wait(lambda: _all(ids, JobStatus.SUCCEEDED), "every job to succeed", second)
        _wait(lambda: len(received) >= 4, "the webhooks", second)
    finally:
        stop_worker(second)
    storage_leftovers_collect(older_than=timedelta(0))
    for job in _jobs(ids):
        assert job.attempts == 2, job.attempts  # the killed claim, then the heir's
        images = list(GeneratedImage.objects.filter(job=job))
        assert len(images) == 1 and images[0].attempt == 2
        assert _bucket_keys(job) == {images[0].storage_key, images[0].thumbnail_key}
        charges = UsageRecord.objects.filter(reference=job.quota_reference, kind="images")
        assert [(c.state, c.amount) for c in charges] == [("settled", 1.0)]
        deliveries = WebhookDelivery.objects.filter(
            event="job.succeeded", payload__data__id=str(job.id)
        )
        assert deliveries.count() == 1
    ids_delivered = [{k.lower(): v for k, v in h.items()}["webhook-id"] for h, _ in received]
    assert len(ids_delivered) == len(set(ids_delivered)) == 4
    assert not PendingObject.objects.exists()


def test_sigterm_mid_batch_finishes_the_batch_before_stopping(
    owner, client_for, tiny_base_model, isolated_broker, tmp_path
):
    ids = _submit(client_for(owner), 4, slow=True)
    worker = start_celery_worker(
        broker=isolated_broker, tmp_path=tmp_path, queues=QUEUES, name="graceful", env=SHORT_LEASES
    )
    try:
        _wait_closely(lambda: _denoising(ids), "the batch to be denoising", worker)
        worker.send_signal(signal.SIGTERM)  # Celery's warm shutdown
        worker.wait(timeout=180)
    finally:
        stop_worker(worker)
    jobs = _jobs(ids)
    assert {j.status for j in jobs} == {JobStatus.SUCCEEDED}
    assert all(j.attempts == 1 and j.images.count() == 1 for j in jobs)


def test_storage_cut_part_way_retries_then_fails_clearly_and_leaves_nothing(
    owner, client_for, tiny_base_model, isolated_broker, tmp_path, settings
):
    from urllib.parse import urlsplit

    settings.EASEL_JOB_MAX_ATTEMPTS = 2  # a job's attempts are fixed when it is made

    endpoint = urlsplit(settings.AWS_S3_ENDPOINT_URL)
    proxy = TcpProxy(endpoint.hostname, endpoint.port)
    env = {
        **SHORT_LEASES,
        "AWS_S3_ENDPOINT_URL": f"http://{proxy.address}",
        "EASEL_RETRY_BACKOFF_SECONDS": "0.5",
    }
    # Every attempt writes a PNG and a thumbnail; the second PUT of each attempt never arrives.
    proxy.cut_when(lambda seen: seen.count(b"PUT /") >= 2)
    worker = start_celery_worker(
        broker=isolated_broker, tmp_path=tmp_path, queues=QUEUES, name="nos3", env=env
    )
    try:
        [job_id] = _submit(client_for(owner), 1)

        def re_arm():  # type: ignore[no-untyped-def]
            job = GenerationJob.objects.get(id=job_id)
            if job.status == JobStatus.PENDING and job.attempts == 1 and proxy.cuts == 1:
                proxy.restore()
                proxy.cut_when(lambda seen: seen.count(b"PUT /") >= 2)
            return job.status in (JobStatus.FAILED, JobStatus.SUCCEEDED)

        _wait(re_arm, "the job to fail", worker)
    finally:
        stop_worker(worker)
        proxy.close()
    job = GenerationJob.objects.get(id=job_id)
    assert (job.status, job.attempts, job.error_code) == ("failed", 2, "storage_unavailable")
    assert job.error_message.startswith("Failed after 2 attempts. The images were made but could")
    assert "object storage failed" in job.error_message
    retried = AuditEvent.objects.filter(object_id=str(job.id), verb="generation.retried")
    assert retried.count() == 1
    assert not GeneratedImage.objects.filter(job=job).exists()  # nothing published
    storage_leftovers_collect(older_than=timedelta(0))
    assert _bucket_keys(job) == set() and not PendingObject.objects.exists()


def _gunicorn(tmp_path: Path, database_port: int, broker: str) -> tuple[subprocess.Popen, str]:
    db = connection.settings_dict
    port = free_port()
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@127.0.0.1:"
        f"{database_port}/{db['NAME']}",
        "CELERY_BROKER_URL": broker,
        "EASEL_VAR_DIR": str(tmp_path / "web-var"),
    }
    log = (tmp_path / "gunicorn.log").open("wb")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "config.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "1",
            "--timeout",
            "60",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    return process, f"http://127.0.0.1:{port}"


def test_the_database_cut_mid_request_is_a_503_and_leaves_no_partial_rows(
    owner, tiny_base_model, isolated_broker, tmp_path
):
    import httpx

    db = connection.settings_dict
    proxy = TcpProxy(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))
    web, base = _gunicorn(tmp_path, proxy.port, isolated_broker)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()[-3000:]
            time.sleep(0.2)
        api_key = make_persona(owner.org, owner.principal, owner.team, "editor").api_key
        headers = {"Authorization": f"Bearer {api_key}"}
        jobs_before = GenerationJob.objects.count()
        usage_before = UsageRecord.objects.count()
        audit_before = AuditEvent.objects.count()
        # The request gets as far as inserting its job (its quota is reserved by then), and the
        # connection goes: the transaction dies with it.
        proxy.cut_when(lambda seen: b'INSERT INTO "generation_generationjob"' in seen)
        response = httpx.post(
            f"{base}/api/v1/generations",
            json={"prompt": "a pear", "model": "tiny", "steps": 2},
            headers=headers,
            timeout=30,
        )
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "5"
        body = response.json()
        assert body["error"]["code"] == "service_unavailable"
        assert "nothing was saved" in body["error"]["message"]
        assert GenerationJob.objects.count() == jobs_before
        assert UsageRecord.objects.count() == usage_before
        assert AuditEvent.objects.count() == audit_before
        # While it stays away, every request is the same 503 (here: before any view ran).
        response = httpx.get(f"{base}/api/v1/generations", headers=headers, timeout=30)
        assert response.status_code == 503 and response.json()["error"]["code"] == (
            "service_unavailable"
        )
        proxy.restore()
        response = httpx.get(f"{base}/api/v1/generations", headers=headers, timeout=30)
        assert response.status_code == 200
    finally:
        web.terminate()
        web.wait(timeout=20)
        proxy.close()


def test_redis_restarted_mid_run_the_catalog_run_completes_with_every_item(
    owner, client_for, tiny_base_model, tmp_path, settings
):
    from catalog.models import CatalogRun, RunStatus
    from catalog.runs import catalog_runs_sweep
    from config.celery_app import app
    from generation.template_services import prompt_template_create
    from models_registry import services as registry

    registry.category_create(
        actor=owner.principal, slug="produce", name="Produce", base_model=tiny_base_model
    )
    prompt_template_create(
        actor=owner.principal,
        application="listing",
        text="a {colour} {name}",
        default_params={"steps": 2},
    )
    client = client_for(owner)
    client.post(
        "/api/v1/catalogs", {"slug": "spring", "default_template": "listing"}, format="json"
    )
    rows = "sku,name,category,colour\n" + "".join(
        f"SKU-{i:02d},apple {i},produce,red\n" for i in range(30)
    )
    upload = io.BytesIO(rows.encode())
    upload.name = "p.csv"
    assert client.post("/api/v1/catalogs/spring/import", {"file": upload}).status_code == 201
    settings.EASEL_PENDING_RESEND_SECONDS = 2  # the reaper re-sends a job whose message is lost
    with redis_server(tmp_path) as redis:
        previous = app.conf.get("broker_write_url")
        app.conf.broker_write_url, app._pool, app.amqp._producer_pool = redis.url, None, None
        env = {
            **SHORT_LEASES,
            "EASEL_CATALOG_MAX_IN_FLIGHT": "4",
            "EASEL_PENDING_RESEND_SECONDS": "2",
        }
        worker = start_celery_worker(
            broker=redis.url, tmp_path=tmp_path, queues=QUEUES, name="redis", env=env
        )
        try:
            response = client.post(
                "/api/v1/catalog-runs", {"catalog": "spring", "mode": "all"}, format="json"
            )
            run_id = response.json()["id"]
            _wait(
                lambda: CatalogRun.objects.get(pk=run_id).items.filter(status="succeeded").exists(),
                "the run to be under way",
                worker,
            )
            redis.stop()  # every queued message is gone with it
            time.sleep(1)
            redis.start()
            app._pool, app.amqp._producer_pool = None, None

            def done():  # type: ignore[no-untyped-def]
                catalog_runs_sweep()  # beat's sweep
                generation_jobs_reap()  # beat's reaper
                return CatalogRun.objects.get(pk=run_id).status == RunStatus.COMPLETED

            _wait(done, "the run to complete after the restart", worker)
        finally:
            stop_worker(worker)
            app.conf.broker_write_url, app._pool, app.amqp._producer_pool = previous, None, None
    run = CatalogRun.objects.get(pk=run_id)
    statuses = list(run.items.values_list("status", flat=True))
    assert len(statuses) == 30 and set(statuses) <= {"succeeded", "failed_quality"}
    assert GenerationJob.objects.filter(product_ref__isnull=False).count() == 30  # none twice


def test_prefer_wait_is_answered_by_a_real_worker(
    owner, client_for, tiny_base_model, isolated_broker, tmp_path
):
    worker = start_celery_worker(
        broker=isolated_broker, tmp_path=tmp_path, queues=QUEUES, name="wait", env=SHORT_LEASES
    )
    try:
        client = client_for(owner)
        response = client.post(
            "/api/v1/generations",
            {"prompt": "a pear", "model": "tiny", "steps": 2},
            format="json",
            HTTP_PREFER="wait=60",
        )
    finally:
        stop_worker(worker)
    assert response.status_code == 200, response.content
    assert response["Preference-Applied"] == "wait=60"
    body = response.json()
    assert body["status"] == "succeeded" and len(body["images"]) == 1
    assert json.loads(json.dumps(body))["images"][0]["url"]
