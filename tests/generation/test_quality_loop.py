"""The quality gate in the worker: judge each attempt, refine the prompt and try again, keep every
attempt, and end ``failed_quality`` when nothing passes.

The model is the boundary: ``local_pipeline.draw_with`` runs the real tiny pipeline call and then
swaps in product shots a test chooses (``shapes_data.render_shots``), so the checks, the verdict,
the refinement, the attempts, quota and webhooks downstream all run for real on known images.
"""

from __future__ import annotations

import pytest

from generation import services, worker
from generation.models import GenerationAttempt, GenerationJob, JobStatus
from generation.review_selectors import review_queue_for_org
from generation.template_services import prompt_template_create
from models_registry.engine.shapes_data import render_shots
from tenants.models import AuditEvent, UsageRecord, WebhookDelivery
from tenants.webhooks import webhook_endpoint_create

pytestmark = pytest.mark.usefixtures("local_pipeline")

COLOUR_RUBRIC = [
    {"question": "Is the product {color}?", "judge": "check", "check": "colour"},
    {"question": "Is the background plain white?", "judge": "check", "check": "backdrop"},
]


def shot(colour: str, *, seed: int = 0, shape: str = "apple", size: int = 64):
    return render_shots([colour], [shape], ["white"], seed=seed % 1000, size=size)[0]


@pytest.fixture(autouse=True)
def _local_webhooks(settings):  # type: ignore[no-untyped-def]
    settings.EASEL_WEBHOOK_ALLOW_PRIVATE = True  # deliveries are looked at, never sent


@pytest.fixture
def template(owner):  # type: ignore[no-untyped-def]
    return prompt_template_create(
        actor=owner.principal,
        application="shot",
        text="a {color} apple on a white background",
        rubric=COLOUR_RUBRIC,
        pass_threshold=1.0,
        max_attempts=3,
    )


@pytest.fixture
def submit(owner, tiny_base_model, enqueued, template):  # type: ignore[no-untyped-def]
    def make(**overrides):  # type: ignore[no-untyped-def]
        data = {
            "template": "shot",
            "variables": {"color": "red"},
            "model": "tiny",
            "steps": 2,
            "seed": 5,
        }
        return services.generation_job_create(actor=owner.principal, data=data | overrides)

    return make


def run_until_finished(job: GenerationJob, limit: int = 5) -> GenerationJob:
    for _ in range(limit):
        worker.generation_run(job_id=job.id)
        job.refresh_from_db()
        if job.status != JobStatus.PENDING:
            break
    return job


def images_charged(job: GenerationJob) -> float:
    row = UsageRecord.objects.get(reference=job.quota_reference, kind="images")
    assert row.state == "settled"
    return row.amount


def test_a_first_attempt_failing_its_rubric_is_refined_and_a_later_one_passes(
    submit, local_pipeline, owner
):
    webhook_endpoint_create(
        actor=owner.principal, url="http://127.0.0.1:9/hook", events=["job.succeeded"]
    )
    # The "model" draws the colour only once the prompt stresses it (as the rules refine it).
    pipe = local_pipeline.draw_with(
        lambda prompt, seed: shot("red" if ", red" in prompt else "green", seed=seed)
    )
    job = run_until_finished(submit())

    assert job.status == JobStatus.SUCCEEDED and job.attempts == 2
    first, second = GenerationAttempt.objects.filter(job=job).order_by("number")
    assert first.prompt == "a red apple on a white background" and first.passed is False
    assert second.prompt == "a red apple on a white background, red" and second.passed is True
    assert "wrong colour" in second.negative_prompt
    assert second.params["cfg_scale"] > first.params["cfg_scale"]
    assert second.params["seeds"] != first.params["seeds"]
    assert second.refinement["by"] == "rules"
    assert any("Wrong colour" in reason for reason in second.refinement["because"])
    assert [len(call) for call in pipe.calls] == [1, 1]

    images = list(job.images.order_by("attempt"))
    assert [(i.attempt, i.scores["passed"], i.is_result) for i in images] == [
        (1, False, False),
        (2, True, True),
    ]
    failed = {a["key"]: a for a in images[0].scores["answers"]}["t1"]
    assert failed["answer"] is False and failed["question"] == "Is the product red?"
    assert images_charged(job) == 2  # both attempts ran on the GPU
    delivery = WebhookDelivery.objects.get(event="job.succeeded")
    assert [i["id"] for i in delivery.payload["data"]["images"]] == [str(images[1].id)]
    verbs = list(
        AuditEvent.objects.filter(object_id=str(job.id))
        .order_by("at", "id")
        .values_list("verb", flat=True)
    )
    assert verbs == [
        "generation.submitted",
        "generation.started",
        "generation.refined",
        "generation.started",
        "generation.succeeded",
    ]


def test_when_no_attempt_passes_the_job_fails_quality_with_every_attempt_kept(
    submit, local_pipeline, owner
):
    webhook_endpoint_create(
        actor=owner.principal, url="http://127.0.0.1:9/hook", events=["job.failed_quality"]
    )
    local_pipeline.draw_with(lambda prompt, seed: shot("blue", seed=seed))
    job = run_until_finished(submit())

    assert job.status == JobStatus.FAILED_QUALITY and job.attempts == 3
    assert job.error_code == "failed_quality"
    assert "No image passed the quality gate in 3 attempts" in job.error_message
    assert "Wrong colour" in job.error_message
    assert GenerationAttempt.objects.filter(job=job, passed=False).count() == 3
    images = list(job.images.order_by("attempt"))
    assert [i.attempt for i in images] == [1, 2, 3]
    assert [i.is_result for i in images] == [False, False, True]
    assert len({i.seed for i in images}) == 3
    assert images_charged(job) == 3
    delivery = WebhookDelivery.objects.get(event="job.failed_quality")
    assert delivery.payload["data"]["images"] == []
    assert delivery.payload["data"]["error"]["code"] == "failed_quality"
    assert not review_queue_for_org(org=owner.org).exists()


def test_only_the_failing_images_of_a_job_are_made_again(submit, local_pipeline):
    # Seed 5 (image 0) draws red, seed 6 (image 1) green until the prompt is refined.
    pipe = local_pipeline.draw_with(
        lambda prompt, seed: shot("red" if seed == 5 or ", red" in prompt else "green", seed=seed)
    )
    job = run_until_finished(submit(num_images=2))
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 2
    assert [len(call) for call in pipe.calls] == [2, 1]
    results = job.images.filter(is_result=True).order_by("index")
    assert [(i.index, i.attempt) for i in results] == [(0, 1), (1, 2)]


def test_defects_fail_without_a_rubric_and_a_clean_image_passes(
    owner, tiny_base_model, enqueued, local_pipeline
):
    import numpy as np

    local_pipeline.draw_with(lambda prompt, seed: np.zeros((64, 64, 3), dtype=np.uint8))
    black = services.generation_job_create(
        actor=owner.principal, data={"prompt": "a red apple", "model": "tiny", "steps": 2}
    )
    black = run_until_finished(black)
    assert black.status == JobStatus.FAILED_QUALITY
    assert "black" in black.error_message.lower()

    local_pipeline.draw_with(lambda prompt, seed: shot("red", seed=seed))
    clean = services.generation_job_create(
        actor=owner.principal, data={"prompt": "a red apple", "model": "tiny", "steps": 2}
    )
    clean = run_until_finished(clean)
    assert clean.status == JobStatus.SUCCEEDED and clean.attempts == 1
    image = clean.images.get()
    assert image.scores["passed"] is True and image.scores["score"] is None
    assert {a["key"] for a in image.scores["answers"]} >= {"black_or_nan", "blur", "safety"}
