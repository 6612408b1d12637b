"""The quality gate's optional and network judges in the job flow: the VLM answers on the CPU
worker's queue (``judging``), the LLM refines prompts there, a failing peer is reported on the
image and never crashes the job, and a safety flag keeps an image out of review, webhooks and
downloads. The peers are a real local HTTP server speaking the OpenAI-compatible protocol; the
safety detector's model is the one boundary patched (no test may ship a nude image)."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from generation import services, tasks, worker
from generation.engine.quality.safety import load_detector
from generation.models import GenerationAttempt, GenerationJob, JobStatus, QualitySettings
from generation.review_selectors import review_queue_for_org
from generation.template_services import prompt_template_create
from tenants.models import WebhookDelivery
from tenants.webhooks import webhook_endpoint_create
from tests.chat_server import MODEL, Reply, failing, said
from tests.generation.test_quality_loop import run_until_finished, shot

pytestmark = pytest.mark.usefixtures("local_pipeline")


@pytest.fixture
def peers(settings, chat_server):  # type: ignore[no-untyped-def]
    settings.EASEL_VLM_URL = chat_server.url
    settings.EASEL_VLM_MODEL = MODEL
    settings.EASEL_LLM_URL = chat_server.url
    settings.EASEL_LLM_MODEL = MODEL
    settings.EASEL_JUDGE_TIMEOUT_SECONDS = 0.2
    settings.EASEL_JUDGE_MAX_RETRIES = 1
    return chat_server


def make_job(owner, rubric, **quality):  # type: ignore[no-untyped-def]
    QualitySettings.objects.update_or_create(organization=owner.org, defaults=quality)
    prompt_template_create(
        actor=owner.principal,
        application="shot",
        text="a {color} {product} on a white background",
        rubric=rubric,
        pass_threshold=1.0,
    )
    data = {
        "template": "shot",
        "variables": {"color": "red", "product": "box"},
        "model": "tiny",
        "steps": 2,
        "seed": 3,
    }
    return services.generation_job_create(actor=owner.principal, data=data)


def judge_on_cpu_worker(job: GenerationJob) -> GenerationJob:
    """What the CPU worker does with the task ``enqueue_judging`` sent."""
    tasks.judge_generation(str(job.id), job.attempts)
    job.refresh_from_db()
    return job


VLM_RUBRIC = [{"question": "Is the product a {product}?", "judge": "vlm"}]


def test_the_vlm_answers_on_the_cpu_worker_and_its_answer_counts(
    owner, tiny_base_model, enqueued, local_pipeline, peers
):
    local_pipeline.draw_with(lambda prompt, seed: shot("red", shape="box", seed=seed))
    job = make_job(owner, VLM_RUBRIC, vlm_enabled=True)
    peers.script(said("Yes, it is a box."))
    worker.generation_run(job_id=job.id)
    job.refresh_from_db()
    assert job.status == JobStatus.JUDGING  # the GPU worker is free again
    assert job.images.get().scores["pending"] == ["vlm"]

    job = judge_on_cpu_worker(job)
    assert job.status == JobStatus.SUCCEEDED
    (request,) = peers.bodies
    assert request["model"] == MODEL
    content = request["messages"][-1]["content"]
    assert any("Is the product a box?" in part.get("text", "") for part in content)
    assert any(
        part.get("image_url", {}).get("url", "").startswith("data:image/png;base64,")
        for part in content
    )
    scores = job.images.get().scores
    vlm = next(a for a in scores["answers"] if a["judge"] == "vlm")
    assert vlm["answer"] is True and "box" in vlm["reason"].lower() and scores["score"] == 1.0


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (failing(500), "http_error"),
        (Reply(delay=0.6, body={"choices": []}), "timeout"),
        (said("Turtles are lovely creatures."), "unparseable"),
    ],
)
def test_a_failing_vlm_is_reported_on_the_image_and_never_crashes_the_job(
    owner, tiny_base_model, enqueued, local_pipeline, peers, reply, error
):
    local_pipeline.draw_with(lambda prompt, seed: shot("red", shape="box", seed=seed))
    peers.script(reply)
    job = make_job(owner, VLM_RUBRIC, vlm_enabled=True)
    worker.generation_run(job_id=job.id)
    job = judge_on_cpu_worker(GenerationJob.objects.get(pk=job.pk))
    # The one scored question could not be judged: it is left out, the image passes on its
    # required checks, and the reason says what happened.
    assert job.status == JobStatus.SUCCEEDED
    scores = job.images.get().scores
    vlm = next(a for a in scores["answers"] if a["judge"] == "vlm")
    assert vlm["answer"] is None and vlm["error"] == error
    assert any(f"Not judged ({error})" in r for r in scores["reasons"])
    if error != "unparseable":
        assert len(peers.received) == 2  # asked again once (EASEL_JUDGE_MAX_RETRIES=1)


def test_a_vlm_question_without_the_vlm_enabled_is_not_judged_and_needs_no_queue(
    owner, tiny_base_model, enqueued, local_pipeline, peers
):
    local_pipeline.draw_with(lambda prompt, seed: shot("red", shape="box", seed=seed))
    job = run_until_finished(make_job(owner, VLM_RUBRIC))
    assert job.status == JobStatus.SUCCEEDED and not peers.received
    vlm = next(a for a in job.images.get().scores["answers"] if a["judge"] == "vlm")
    assert vlm["error"] == "judge_off"


COLOUR_RUBRIC = [{"question": "Is the product {color}?", "judge": "check", "check": "colour"}]


def test_the_llm_refines_the_prompt_on_the_cpu_worker(
    owner, tiny_base_model, enqueued, local_pipeline, peers
):
    local_pipeline.draw_with(
        lambda prompt, seed: shot("red" if "crimson" in prompt else "green", shape="box", seed=seed)
    )
    rewritten = {"prompt": "a crimson red box on a white background", "negative_prompt": "green"}
    peers.script(said("Here you go:\n```json\n" + json.dumps(rewritten) + "\n```"))
    job = make_job(owner, COLOUR_RUBRIC, llm_refine_enabled=True)
    worker.generation_run(job_id=job.id)
    job = judge_on_cpu_worker(GenerationJob.objects.get(pk=job.pk))
    assert job.status == JobStatus.PENDING and job.prompt == rewritten["prompt"]
    asked = json.dumps(peers.bodies[0])
    assert "Is the product red?" in asked and "Wrong colour" in asked

    job = run_until_finished(job)
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 2
    second = GenerationAttempt.objects.get(job=job, number=2)
    assert second.refinement["by"] == "llm" and second.negative_prompt == "green"


def test_a_failing_llm_falls_back_to_the_rules(
    owner, tiny_base_model, enqueued, local_pipeline, peers
):
    local_pipeline.draw_with(
        lambda prompt, seed: shot("red" if ", red" in prompt else "green", shape="box", seed=seed)
    )
    peers.script(failing(503))
    job = make_job(owner, COLOUR_RUBRIC, llm_refine_enabled=True)
    worker.generation_run(job_id=job.id)
    job = judge_on_cpu_worker(GenerationJob.objects.get(pk=job.pk))
    assert job.status == JobStatus.PENDING
    assert job.refinement["by"] == "rules"
    assert "the LLM could not refine the prompt" in job.refinement["changes"][0]


def test_a_flagged_image_never_reaches_review_webhooks_or_downloads(
    owner, tiny_base_model, enqueued, local_pipeline, client_for, monkeypatch, settings
):
    settings.EASEL_WEBHOOK_ALLOW_PRIVATE = True
    webhook_endpoint_create(
        actor=owner.principal,
        url="http://127.0.0.1:9/hook",
        events=["job.succeeded", "job.failed_quality"],
    )
    local_pipeline.draw_with(lambda prompt, seed: shot("red", shape="box", seed=seed))
    detection = {"class": "FEMALE_BREAST_EXPOSED", "score": 0.93, "box": [2, 2, 20, 20]}
    monkeypatch.setattr(load_detector(), "detect", lambda image: [dict(detection)])
    job = run_until_finished(make_job(owner, COLOUR_RUBRIC))

    assert job.status == JobStatus.FAILED_QUALITY and job.attempts == 3
    image = job.images.filter(is_result=True).get()
    assert image.scores["unsafe"] is True
    assert any("FEMALE_BREAST_EXPOSED" in r for r in image.scores["reasons"])
    assert not review_queue_for_org(org=owner.org).exists()
    (delivery,) = WebhookDelivery.objects.all()
    assert delivery.event == "job.failed_quality" and delivery.payload["data"]["images"] == []

    api = client_for(owner)
    body = api.get(f"/api/v1/images/{image.id}").json()
    assert body["url"] is None and body["thumbnail_url"] is None
    assert api.get(f"/api/v1/images/{image.id}/download").status_code == 404
    studio = Client()
    studio.force_login(owner.user)
    assert studio.get(f"/studio/images/{image.id}/file/").status_code == 404


def test_a_job_canceled_while_judging_ends_canceled_and_is_charged_for_what_it_made(
    owner, tiny_base_model, enqueued, local_pipeline, peers
):
    from generation.services import generation_job_cancel
    from tenants.models import UsageRecord

    local_pipeline.draw_with(lambda prompt, seed: shot("red", shape="box", seed=seed))
    job = make_job(owner, VLM_RUBRIC, vlm_enabled=True)
    worker.generation_run(job_id=job.id)
    job.refresh_from_db()
    assert job.status == JobStatus.JUDGING
    generation_job_cancel(actor=owner.principal, job=job)
    job = judge_on_cpu_worker(job)
    assert job.status == JobStatus.CANCELED and not peers.received
    images = UsageRecord.objects.get(reference=job.quota_reference, kind="images")
    assert (images.state, images.amount) == ("settled", 1)


def test_the_reaper_hands_a_judging_job_whose_cpu_worker_died_to_another(
    owner, tiny_base_model, enqueued, local_pipeline, peers, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    local_pipeline.draw_with(lambda prompt, seed: shot("red", shape="box", seed=seed))
    job = make_job(owner, VLM_RUBRIC, vlm_enabled=True)
    worker.generation_run(job_id=job.id)
    assert services.generation_jobs_reap()["rejudged"] == 0  # its lease still runs
    later = timezone.now() + timedelta(hours=1)
    with django_capture_on_commit_callbacks() as sent:
        assert services.generation_jobs_reap(now=later)["rejudged"] == 1
    assert len(sent) == 1  # the judging task, sent again
    assert services.generation_jobs_reap(now=later)["rejudged"] == 0  # lease renewed
    job = judge_on_cpu_worker(GenerationJob.objects.get(pk=job.pk))
    assert job.status == JobStatus.SUCCEEDED
