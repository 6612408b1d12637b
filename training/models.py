"""Fine-tuning jobs: a handful of product photos in, a candidate model version of a category out.

A job moves ``pending → running → succeeded | failed | canceled`` (``running → pending`` when its
worker was lost: the next one resumes from the last checkpoint). Every change goes through
``training.transitions.training_transition``. Its instance images are validated and normalized
before anything is queued and stored in object storage with their hashes; its validation images
(the category's regression prompts, with and without the new weights) are kept with their
quality-gate scores.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from models_registry.models import BaseModel, Category, ModelVersion
from tenants.models import ApiKey, Organization, Team

__all__ = ["TrainingImage", "TrainingJob", "TrainingStatus", "ValidationImage"]


class TrainingStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


FINISHED = (TrainingStatus.SUCCEEDED, TrainingStatus.FAILED, TrainingStatus.CANCELED)


class TrainingMode(models.TextChoices):
    LORA = "lora", "DreamBooth-LoRA"
    FULL = "full", "DreamBooth (full UNet)"


class TrainingJob(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="training_jobs"
    )
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    category = models.ForeignKey(Category, on_delete=models.CASCADE, related_name="training_jobs")
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="+")
    mode = models.CharField(max_length=8, choices=TrainingMode.choices, default=TrainingMode.LORA)
    rare_token = models.CharField(max_length=40)
    instance_prompt = models.CharField(max_length=300)
    class_prompt = models.CharField(max_length=300)
    params = models.JSONField(
        help_text="The trainer's parameters (training.engine.DreamBoothConfig)."
    )

    status = models.CharField(
        max_length=10, choices=TrainingStatus.choices, default=TrainingStatus.PENDING
    )
    cancel_requested = models.BooleanField(default=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    loss_curve = models.JSONField(default=list, blank=True, help_text="[[step, loss], ...]")
    log = models.TextField(blank=True, help_text="What happened, for a person to read.")
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    gpu_seconds = models.FloatField(default=0.0)
    metrics = models.JSONField(default=dict, blank=True)
    output_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    idempotency_key = models.CharField(max_length=255, blank=True)

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "-created_at"]),
            models.Index(fields=["status", "lease_expires_at"]),
        ]

    def __str__(self) -> str:
        return f"training {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def progress(self) -> float:
        return self.step / self.total_steps if self.total_steps else 0.0

    @property
    def quota_reference(self) -> str:
        return f"training:{self.id}"


class TrainingImage(models.Model):
    """One instance photo, as normalized (RGB, EXIF-upright, centre-cropped, resized) and stored."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="images")
    index = models.PositiveSmallIntegerField()
    file_name = models.CharField(max_length=255)
    storage_key = models.CharField(max_length=300)
    sha256 = models.CharField(max_length=64, help_text="Of the file as uploaded.")
    width = models.PositiveIntegerField(help_text="As uploaded.")
    height = models.PositiveIntegerField(help_text="As uploaded.")
    size_bytes = models.PositiveIntegerField()

    class Meta:
        ordering = ["job", "index"]
        constraints = [
            models.UniqueConstraint(fields=["job", "index"], name="one_training_image_per_index")
        ]

    def __str__(self) -> str:
        return f"photo {self.index} ({self.file_name}) of training {self.job_id}"


class ValidationImage(models.Model):
    """An image of a regression prompt made with a trained version (or, to compare, without)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="validation")
    model_version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="validation_images",
        help_text="The version it was made with; empty for the base model's comparison image.",
    )
    step = models.PositiveIntegerField(help_text="Training step of the weights that made it.")
    prompt = models.CharField(max_length=300)
    seed = models.BigIntegerField()
    storage_key = models.CharField(max_length=300)
    scores = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["job", "step", "prompt", "seed"]

    def __str__(self) -> str:
        return f"validation image of training {self.job_id} ({self.prompt}, seed {self.seed})"
