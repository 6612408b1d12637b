"""Generation jobs and the images they produce.

A job moves ``pending → running → succeeded | failed | canceled``. A worker claims it with a
conditional update (``pending → running``, exactly one row), holding a lease it renews while it
runs; the reaper puts a job whose lease ran out back to ``pending`` or, out of attempts, fails it.
Ids are UUIDs so they cannot be enumerated.

A job owns ``num_images`` images; image ``i`` uses seed ``seed + i``. An image's storage key is
deterministic (``orgs/<org>/generations/<job>/<index>-<attempt>.png``), so a task delivered twice
overwrites its own output instead of adding a copy.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from models_registry.models import BaseModel, Category, ModelVersion
from tenants.models import ApiKey, Organization, Team

from .templates import PromptTemplate

__all__ = ["GeneratedImage", "GenerationJob", "JobPriority", "JobStatus"]


class JobStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


FINISHED_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)


class JobPriority(models.TextChoices):
    INTERACTIVE = "interactive", "Interactive"
    BULK = "bulk", "Bulk"


class GenerationJob(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="generation_jobs"
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

    # What was asked for and what serves it.
    template = models.ForeignKey(
        PromptTemplate, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    template_version = models.PositiveIntegerField(null=True, blank=True)
    category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    model = models.CharField(
        max_length=120, blank=True, help_text="The model the request named, if any."
    )
    backend = models.CharField(
        max_length=40, default="local", help_text="'local' (diffusers) or a hosted provider."
    )
    base_model = models.ForeignKey(
        BaseModel, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    params = models.JSONField(help_text="The resolved unified parameters (GenerationParams).")
    prompt = models.TextField(help_text="The final prompt (template rendered, style applied).")
    num_images = models.PositiveSmallIntegerField(default=1)
    # Jobs with the same key can share one pipeline call (same model, size, steps, scheduler, cfg).
    batch_key = models.CharField(max_length=64, db_index=True)

    priority = models.CharField(
        max_length=12, choices=JobPriority.choices, default=JobPriority.INTERACTIVE
    )
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.PENDING)
    cancel_requested = models.BooleanField(default=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    progress = models.FloatField(default=0.0, help_text="0..1, updated between denoising steps.")
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    gpu_seconds = models.FloatField(default=0.0)
    batch_size = models.PositiveSmallIntegerField(
        default=0, help_text="Images in the pipeline call that made this job's images."
    )
    idempotency_key = models.CharField(max_length=255, blank=True)

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "-created_at"]),
            models.Index(fields=["status", "priority", "batch_key", "created_at"]),
            models.Index(fields=["status", "lease_expires_at"]),
            # The fair-share scheduler: when was each organization last served, per priority.
            models.Index(fields=["organization", "priority", "started_at"]),
        ]

    def __str__(self) -> str:
        return f"job {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def quota_reference(self) -> str:
        return f"generation:{self.id}"


class GeneratedImage(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    job = models.ForeignKey(GenerationJob, on_delete=models.CASCADE, related_name="images")
    index = models.PositiveSmallIntegerField()
    attempt = models.PositiveSmallIntegerField()
    seed = models.BigIntegerField()
    storage_key = models.CharField(max_length=300)
    thumbnail_key = models.CharField(max_length=300, blank=True)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.PositiveIntegerField(default=0)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    scores = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["job", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "index", "attempt"], name="one_image_per_job_index_attempt"
            )
        ]

    def __str__(self) -> str:
        return f"image {self.index} of job {self.job_id}"
