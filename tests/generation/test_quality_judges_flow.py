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


CLIP_RUBRIC = [{"question": "Is the product a red box?", "judge": "clip"}]


def _upload_folder(folder, *, bucket: str, prefix: str) -> None:  # type: ignore[no-untyped-def]
    import boto3
    from django.conf import settings

    client = boto3.client(
        "s3",
        endpoint_url=settings.AWS_S3_ENDPOINT_URL,
        region_name=settings.AWS_S3_REGION_NAME,
        aws_access_key_id=settings.AWS_ACCESS_KEY_ID,
        aws_secret_access_key=settings.AWS_SECRET_ACCESS_KEY,
    )
    for path in folder.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder)}")


@pytest.mark.parametrize("where", ["folder", "s3"])
def test_the_clip_judge_answers_in_the_gpu_worker_from_a_folder_or_s3(
    owner, tiny_base_model, enqueued, local_pipeline, settings, tmp_path, where
):
    import uuid

    from tests.clip_fixture import build_tiny_clip
    from tests.conftest import require_service

    folder = tmp_path / "clip"
    build_tiny_clip(folder)
    settings.EASEL_BUILD_CACHE_DIR = tmp_path / "cache"
    settings.EASEL_CLIP_THRESHOLD = -1.0  # a random CLIP: every similarity counts as a yes
    if where == "s3":
        if not settings.AWS_S3_ENDPOINT_URL:
            require_service("S3", "AWS_S3_ENDPOINT_URL is not set (scripts/services.sh env)")
        prefix = f"checkpoints/clip-{uuid.uuid4().hex[:8]}"
        _upload_folder(folder, bucket=settings.AWS_STORAGE_BUCKET_NAME, prefix=prefix)
        settings.EASEL_CLIP_MODEL_PATH = f"s3://{settings.AWS_STORAGE_BUCKET_NAME}/{prefix}"
    else:
        settings.EASEL_CLIP_MODEL_PATH = str(folder)
    local_pipeline.draw_with(lambda prompt, seed: shot("red", shape="box", seed=seed))
    job = run_until_finished(make_job(owner, CLIP_RUBRIC, clip_enabled=True))

    assert job.status == JobStatus.SUCCEEDED  # no queue: CLIP runs in the GPU worker
    clip = next(a for a in job.images.get().scores["answers"] if a["judge"] == "clip")
    assert clip["answer"] is True and clip["error"] == "" and "Similarity" in clip["reason"]


def test_an_unreachable_clip_checkpoint_is_not_judged_and_the_job_goes_on(
    owner, tiny_base_model, enqueued, local_pipeline, settings, tmp_path
):
    settings.EASEL_BUILD_CACHE_DIR = tmp_path / "cache"
    settings.EASEL_CLIP_MODEL_PATH = f"s3://{settings.AWS_STORAGE_BUCKET_NAME}/no/such/prefix"
    local_pipeline.draw_with(lambda prompt, seed: shot("red", shape="box", seed=seed))
    job = run_until_finished(make_job(owner, CLIP_RUBRIC, clip_enabled=True))
    assert job.status == JobStatus.SUCCEEDED
    clip = next(a for a in job.images.get().scores["answers"] if a["judge"] == "clip")
    assert clip["answer"] is None and clip["error"] == "clip_unavailable"


def test_the_llm_drafts_a_rubric_that_is_validated_before_it_is_returned(owner, client_for, peers):
    prompt_template_create(
        actor=owner.principal, application="shot", text="a {color} {product} on a white background"
    )
    drafted = [
        {
            "question": "Is the product {color}?",
            "expected": "yes",
            "weight": 2,
            "judge": "check",
            "check": "colour",
        },
        {"question": "Is the background plain?", "expected": "yes", "weight": 1, "judge": "vlm"},
    ]
    peers.script(said("Sure! Here are the questions:\n" + json.dumps(drafted)))
    response = client_for(owner).post(
        "/api/v1/templates/shot/rubric-draft",
        {"description": "a red product, whole, on plain white"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    rubric = response.json()["rubric"]
    assert [(q["question"], q["judge"], q["weight"]) for q in rubric] == [
        ("Is the product {color}?", "check", 2.0),
        ("Is the background plain?", "vlm", 1.0),
    ]
    assert "a red product, whole, on plain white" in json.dumps(peers.bodies[0])
    peers.script(failing(500))
    broken = client_for(owner).post(
        "/api/v1/templates/shot/rubric-draft", {"description": "anything"}, format="json"
    )
    assert broken.status_code == 502 and broken.json()["error"]["code"] == "llm_unavailable"
