"""``/metrics``: for operators only, and after a generation it shows the workers' named series.

The generation runs in-process on the worker's real model path (artifact cache, per-process
pipeline cache, a category's LoRA swapped in), as tests/generation/test_worker_adapters.py does,
so the counters move because the code under test moved them. Counters are process-wide and other
tests add to them, so each check compares the page before and after.
"""

from __future__ import annotations

from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from prometheus_client.parser import text_string_to_metric_families

from generation import services, worker
from generation.models import GenerationJob, JobStatus

TOKEN = "metrics-token-for-tests-0123456789"


def _scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:  # type: ignore[no-untyped-def]
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _value(samples, name: str, **labels: str) -> float:  # type: ignore[no-untyped-def]
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def token(settings):  # type: ignore[no-untyped-def]
    settings.EASEL_METRICS_TOKEN = TOKEN


@pytest.mark.django_db
def test_metrics_are_refused_to_anyone_but_staff_and_the_token(client, owner, token):
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    client.force_login(owner.user)  # an organization's owner is not an operator
    assert client.get("/metrics").status_code == 403
    staff = get_user_model().objects.create_user("ops", password="pw-ops-12345", is_staff=True)
    client.force_login(staff)
    assert client.get("/metrics").status_code == 200


@pytest.mark.django_db
def test_without_a_configured_token_no_bearer_gets_in(client, settings):
    settings.EASEL_METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403


@pytest.fixture
def model_path(settings, tmp_path):  # type: ignore[no-untyped-def]
    """The worker's real model path, with an artifact cache of this test's own."""
    settings.EASEL_MODEL_CACHE_DIR = tmp_path / "model-cache"
    settings.EASEL_DEVICE = "cpu"
    settings.EASEL_WORKER_DRAIN_SECONDS = 0


def _generate(owner, django_capture_on_commit_callbacks, **data) -> GenerationJob:  # type: ignore[no-untyped-def]
    with mock.patch("generation.tasks.enqueue_generation"):
        job = services.generation_job_create(
            actor=owner.principal, data={"prompt": "a red apple", "steps": 2, "seed": 5} | data
        )
    with django_capture_on_commit_callbacks(execute=True):
        worker.generation_run(job_id=job.id)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error_message
    return job


@pytest.mark.django_db
def test_metrics_show_the_worker_series_after_a_generation(
    client, owner, model_path, produce_lora, token, django_capture_on_commit_callbacks
):
    before = _scrape(client)
    _generate(owner, django_capture_on_commit_callbacks, model="tiny", num_images=2)
    lora_job = _generate(owner, django_capture_on_commit_callbacks, category="produce")
    after = _scrape(client)

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    tiny = {"queue": "interactive", "model": "tiny"}
    assert grew("easel_generation_jobs_started_total", **tiny) == 2
    assert grew("easel_generation_jobs_finished_total", **tiny, status="succeeded") == 2
    assert grew("easel_generation_images_total", **tiny) == 3
    assert grew("easel_generation_gpu_seconds_total", **tiny) > 0
    assert grew("easel_generation_gpu_seconds_total", **tiny) == pytest.approx(
        sum(j.gpu_seconds for j in GenerationJob.objects.filter(organization=owner.org)),
        rel=1e-6,
    )
    assert grew("easel_generation_queue_wait_seconds_count", **tiny) == 2
    assert grew("easel_generation_job_duration_seconds_count", **tiny) == 2
    assert grew("easel_generation_jobs_failed_total", **tiny, error_code="worker_error") == 0
    # The first batch loaded the base; the second found it warm and swapped the LoRA in.
    assert grew("easel_pipeline_cache_misses_total") + grew("easel_pipeline_cache_hits_total") == 2
    assert grew("easel_pipeline_cache_hits_total") >= 1
    assert grew("easel_adapter_swaps_total", model="tiny", kind="load") == 1
    assert lora_job.model_version_id == produce_lora.pk
    # Scrape-time figures from the jobs table, and the web tier's django-prometheus series.
    assert _value(after, "easel_queue_depth", queue="interactive") == 0
    assert ("easel_queue_oldest_waiting_seconds", (("queue", "bulk"),)) in after
    assert any(name.startswith("django_http_requests_latency") for name, _ in after)


@pytest.mark.django_db
def test_queue_depth_counts_what_waits_per_queue_and_its_age(
    client, owner, tiny_base_model, token, enqueued, settings
):
    settings.EASEL_FAMILY_QUEUES = {"tiny": "small"}
    for seed in range(3):
        services.generation_job_create(
            actor=owner.principal, data={"prompt": "a box", "model": "tiny", "seed": seed}
        )
    services.generation_job_create(
        actor=owner.principal, data={"prompt": "a box", "model": "tiny"}, priority="bulk"
    )
    samples = _scrape(client)
    assert _value(samples, "easel_queue_depth", queue="interactive-small") == 3
    assert _value(samples, "easel_queue_depth", queue="bulk-small") == 1
    assert _value(samples, "easel_queue_depth", queue="interactive") == 0
    assert _value(samples, "easel_queue_oldest_waiting_seconds", queue="interactive-small") > 0


@pytest.mark.django_db
def test_a_training_step_counts():
    from types import SimpleNamespace

    from prometheus_client import REGISTRY

    from training.worker import _Watch

    def steps() -> float:
        return REGISTRY.get_sample_value("easel_training_steps_total", {"mode": "lora"}) or 0.0

    before = steps()
    watch = _Watch(SimpleNamespace(id=None, mode="lora", loss_curve=[]))  # type: ignore[arg-type]
    for step in (1, 2, 3):
        watch.progress(SimpleNamespace(step=step, total=10, loss=0.5))
    assert steps() - before == 3
