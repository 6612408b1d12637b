"""The train worker in-process on the tiny model with the real DreamBooth trainer: a job trains,
registers a candidate version with its lineage, stores validation images with the gate's scores
beside the base model's, announces itself; a cancel stops it within a step; a worker lost after
a checkpoint is replaced by one that resumes (the step count continues)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from models_registry.models import Category, ModelVersion, VersionKind, VersionStatus
from tenants.models import UsageRecord, WebhookDelivery
from tenants.webhooks import webhook_endpoint_create
from training import services, worker
from training.models import TrainingJob, TrainingStatus, ValidationImage

pytestmark = pytest.mark.django_db

PARAMS = {
    "max_steps": 4,
    "checkpoint_every": 2,
    "num_class_images": 2,
    "learning_rate": 1e-3,
    "rank": 4,
}


def star(i: int) -> tuple[str, bytes]:
    out = io.BytesIO()
    image = Image.new("RGB", (40, 40), (250, 250, 248))
    for x in range(12 + i, 28 + i):
        for y in range(12, 28):
            image.putpixel((x, y), (0, 200, 220))
    image.save(out, format="PNG")
    return f"star-{i}.png", out.getvalue()


@pytest.fixture
def job(owner, tiny_base_model, settings, tmp_path):  # type: ignore[no-untyped-def]
    import torch

    torch.set_num_threads(1)
    settings.EASEL_TRAINING_WORK_DIR = tmp_path / "training"
    settings.EASEL_WEBHOOK_ALLOW_PRIVATE = True
    webhook_endpoint_create(
        actor=owner.principal,
        url="http://127.0.0.1:9/hook",
        events=["training.succeeded", "training.failed"],
    )
    category = Category.objects.create(
        organization=owner.org, slug="stars", name="Stars", base_model=tiny_base_model
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(services, "enqueue_training", lambda **kwargs: None)
        return services.training_job_create(
            actor=owner.principal,
            category=category,
            files=[star(i) for i in range(3)],
            rare_token="sks",
            class_prompt="a star",
            params=PARAMS,
        )


def test_a_job_trains_and_registers_a_candidate_with_scored_validation_images(job):
    done = worker.training_run(job_id=job.id)
    assert done.status == TrainingStatus.SUCCEEDED, done.error_message
    assert done.step == 4 and [s for s, _ in done.loss_curve] == [1, 2, 3, 4]
    version = ModelVersion.objects.get(pk=done.output_version_id)
    assert (version.kind, version.status) == (VersionKind.LORA, VersionStatus.CANDIDATE)
    assert version.training_job_id == job.id and version.base_id == job.base_model_id
    assert len(version.metrics["instance_sha256"]) == 3 and version.metrics["steps"] == 4
    assert "validation_pass_rate" in version.metrics
    made = ValidationImage.objects.filter(job=job)
    assert made.filter(model_version=version).count() == 8  # 2 prompts × 4 seeds
    assert made.filter(model_version__isnull=True).count() == 8  # the base model's, to compare
    assert all("passed" in v.scores and v.scores["answers"] for v in made)
    assert "trained 4 steps" in done.log
    delivery = WebhookDelivery.objects.get(event="training.succeeded")
    assert delivery.payload["data"]["output_version"] == version.pk
    gpu = UsageRecord.objects.get(reference=job.quota_reference, kind="gpu_seconds")
    assert gpu.state == "settled" and gpu.amount > 0


def test_a_cancel_stops_the_job_within_one_step(job, owner, monkeypatch):
    seen = worker._Watch.progress

    def progress_then_cancel(self, p):  # type: ignore[no-untyped-def]
        seen(self, p)
        if p.step == 1:  # the user clicks "cancel" while step 2 is being prepared
            services.training_job_cancel(
                actor=owner.principal, job=TrainingJob.objects.get(pk=job.pk)
            )

    monkeypatch.setattr(worker._Watch, "progress", progress_then_cancel)
    done = worker.training_run(job_id=job.id)
    assert done.status == TrainingStatus.CANCELED and done.step == 1
    assert done.output_version_id is None and "canceled at step 1" in done.log


class Killed(BaseException):
    """What ``kill -9`` looks like from inside: nothing runs after it, no handler catches it."""


def test_a_worker_lost_after_a_checkpoint_is_replaced_by_one_that_resumes(job, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    seen = worker._Watch.progress

    def progress_then_die(self, p):  # type: ignore[no-untyped-def]
        seen(self, p)
        if p.step == 3:
            raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(worker._Watch, "progress", progress_then_die)
        with pytest.raises(Killed):
            worker.training_run(job_id=job.id)
    job.refresh_from_db()
    assert job.status == TrainingStatus.RUNNING  # nobody told the row: only the lease can
    with monkeypatch.context() as patch:
        patch.setattr(services, "enqueue_training", lambda **kwargs: None)
        assert services.training_jobs_reap()["requeued"] == 0  # its lease still runs
        later = timezone.now() + timedelta(hours=1)
        assert services.training_jobs_reap(now=later)["requeued"] == 1
    job.refresh_from_db()
    assert job.status == TrainingStatus.PENDING

    done = worker.training_run(job_id=job.id)
    assert done.status == TrainingStatus.SUCCEEDED and done.attempts == 2
    assert "resumed from step 2" in done.log
    assert done.step == 4


def test_a_pending_job_whose_message_was_lost_is_sent_again_once(job, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from training.models import TrainingJob

    sent: list[str] = []
    monkeypatch.setattr(services, "enqueue_training", lambda *, job: sent.append(str(job.id)))
    assert services.training_jobs_reap()["resent"] == 0  # its message may still come
    past = timezone.now() - timedelta(seconds=1)
    TrainingJob.objects.filter(pk=job.pk).update(lease_expires_at=past)
    assert services.training_jobs_reap()["resent"] == 1 and sent == [str(job.pk)]
    assert services.training_jobs_reap()["resent"] == 0  # not again until the next resend time
