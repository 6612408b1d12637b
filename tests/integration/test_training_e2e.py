"""End to end with real train workers: ``kill -9`` of the worker mid-job, then the reaper and a new
worker, which resumes from the last checkpoint (the step count continues, it does not restart),
and the job ends with a registered candidate version. Real Celery worker processes on the
``train`` queue, Redis, PostgreSQL, SeaweedFS; the tiny model keeps the compute to seconds."""

from __future__ import annotations

import io
import signal
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from PIL import Image

from models_registry.models import Category, ModelVersion
from training import services
from training.engine.checkpoints import latest_checkpoint
from training.engine.dreambooth import CHECKPOINTS_DIR
from training.models import TrainingJob, TrainingStatus
from training.worker import work_dir

from .test_generation_e2e import start_celery_worker, stop_worker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WAIT_SECONDS = 300
WORKER_ENV = {"EASEL_TRAINING_LEASE_SECONDS": "3", "OMP_NUM_THREADS": "1"}


def photo(i: int) -> tuple[str, bytes]:
    out = io.BytesIO()
    image = Image.new("RGB", (36, 36), (248, 248, 245))
    image.paste((0, 190 + i, 220), (10 + i, 10, 26 + i, 26))
    image.save(out, format="PNG")
    return f"star-{i}.png", out.getvalue()


def wait_for(predicate, what: str, worker) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if predicate():
            return
        if worker.poll() is not None:
            break
        time.sleep(0.2)
    tail = worker.log_path.read_text(errors="replace")[-4000:]
    pytest.fail(f"timed out waiting for {what}; worker log tail:\n{tail}")


def test_kill_9_mid_training_then_a_new_worker_resumes_from_the_checkpoint(
    owner,
    tiny_base_model,
    isolated_broker,
    tmp_path,
    settings,
):
    settings.EASEL_TRAINING_WORK_DIR = tmp_path / "var" / "training"
    category = Category.objects.create(
        organization=owner.org, slug="stars", name="Stars", base_model=tiny_base_model
    )
    first = start_celery_worker(
        broker=isolated_broker, tmp_path=tmp_path, queues="train", name="train-1", env=WORKER_ENV
    )
    try:
        job = services.training_job_create(
            actor=owner.principal,
            category=category,
            files=[photo(i) for i in range(3)],
            rare_token="sks",
            class_prompt="a star",
            params={"max_steps": 120, "checkpoint_every": 10, "num_class_images": 2},
        )

        def past_a_checkpoint() -> bool:
            return TrainingJob.objects.get(pk=job.pk).step >= 25

        wait_for(past_a_checkpoint, "the first worker to pass step 25", first)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        killed_at = TrainingJob.objects.get(pk=job.pk)
        assert killed_at.status == TrainingStatus.RUNNING  # nothing ran after the kill
        # The row's step is written every few seconds and may lag the trainer; the checkpoint
        # folder says where the killed run really got to.
        last = latest_checkpoint(work_dir(job) / CHECKPOINTS_DIR)
        assert last is not None and last.step >= 20
    finally:
        stop_worker(first)

    # The lease (3 s here) runs out; the reaper (beat runs it every minute) hands the job on.
    time.sleep(4)
    assert services.training_jobs_reap(now=timezone.now() + timedelta(seconds=1))["requeued"] == 1
    second = start_celery_worker(
        broker=isolated_broker, tmp_path=tmp_path, queues="train", name="train-2", env=WORKER_ENV
    )
    try:

        def finished() -> bool:
            return TrainingJob.objects.get(pk=job.pk).is_finished

        wait_for(finished, "the second worker to finish the job", second)
    finally:
        stop_worker(second)

    job.refresh_from_db()
    assert job.status == TrainingStatus.SUCCEEDED, job.error_message
    assert job.attempts == 2 and job.step == 120
    resumed = int(job.log.split("resumed from step ")[1].split(")")[0])
    assert resumed == last.step  # the killed run's last complete checkpoint: not a restart
    steps = [int(s) for s, _ in job.loss_curve]
    assert steps == list(range(1, 121))  # continuous: nothing restarted from step 1
    version = ModelVersion.objects.get(pk=job.output_version_id)
    assert version.training_job_id == job.id and version.status == "candidate"
