"""Generation jobs and the images they produce.

A job moves ``pending → running → succeeded | failed | failed_quality | canceled``; a job whose
rubric needs a network judge waits in ``judging`` between ``running`` and its outcome, and a job
whose images failed the quality gate goes back to ``pending`` with a refined prompt (the next
attempt). A worker claims it with a conditional update (``pending → running``, exactly one row),
holding a lease it renews while it runs; the reaper puts a job whose lease ran out back to
``pending`` or, out of attempts, fails it. Ids are UUIDs so they cannot be enumerated.

A job owns ``num_images`` images; image ``i`` uses seed ``seed + i``. An image's storage key is
deterministic (``orgs/<org>/generations/<job>/<index>-<attempt>.png``), so a task delivered twice
overwrites its own output instead of adding a copy. Every attempt's images are kept, with their
scores; ``GenerationAttempt`` records what each attempt ran with and why it changed.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from models_registry.models import BaseModel, Category, ModelVersion
from tenants.models import ApiKey, Organization, Team

from .templates import PromptTemplate

__all__ = [
    "GeneratedImage",
    "GenerationAttempt",
    "GenerationJob",
    "JobPriority",
    "JobStatus",
    "PendingObject",
]


class JobStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    JUDGING = "judging", "Judging"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    FAILED_QUALITY = "failed_quality", "Failed the quality gate"
    CANCELED = "canceled", "Canceled"


FINISHED_STATUSES = (
    JobStatus.SUCCEEDED,
    JobStatus.FAILED,
    JobStatus.FAILED_QUALITY,
    JobStatus.CANCELED,
)


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
    # A variation's lineage (img2img, inpaint): the image it started from, one of this
    # organization's generated images or uploads (the mask, if any, is in ``params``).
    source_image = models.ForeignKey(
        "GeneratedImage",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="variations",
    )
    source_upload = models.ForeignKey(
        "Upload", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    prompt = models.TextField(help_text="The final prompt (template rendered, style applied).")
    num_images = models.PositiveSmallIntegerField(default=1)
    # Jobs with the same key can share one pipeline call (same model, size, steps, scheduler, cfg).
    batch_key = models.CharField(max_length=64, db_index=True)

    priority = models.CharField(
        max_length=12, choices=JobPriority.choices, default=JobPriority.INTERACTIVE
    )
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING)
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
    # The next attempt's plan when the quality gate asked for one: which image indices to make
    # again (all when empty) and how the prompt was refined (see generation.quality).
    regenerate = models.JSONField(default=list, blank=True)
    refinement = models.JSONField(default=dict, blank=True)
    # The catalog product (``catalog.Product`` id) this job makes an image for, if any: a plain
    # id, not a foreign key, because generation sits below the catalog app. Approving such an
    # image publishes it for that product (``generation.signals.image_reviewed``), not for the
    # category.
    product_ref = models.BigIntegerField(null=True, blank=True, db_index=True)

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The list and its filters, newest first, each within one organization (the plans
            # at 200,000 jobs: bench/query_plans.py). Template and model version need none of
            # their own: each belongs to one organization, so their foreign-key indexes are.
            models.Index(fields=["organization", "-created_at"]),
            models.Index(fields=["organization", "status", "-created_at"], name="job_org_status"),
            models.Index(
                fields=["organization", "category", "-created_at"], name="job_org_category"
            ),
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
    # The job's result for this index: the best image that passed the gate (or, when none did,
    # the latest attempt's, so a failed_quality job still shows what it made).
    is_result = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["job", "index", "attempt"]
        indexes = [
            # The review queue (oldest first) and the gallery (newest first) read an
            # organization's result images in this order and stop after a page.
            models.Index(
                fields=["organization", "created_at", "index"],
                condition=models.Q(is_result=True),
                name="image_org_result_created",
            )
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "index", "attempt"], name="one_image_per_job_index_attempt"
            )
        ]

    def __str__(self) -> str:
        return f"image {self.index} of job {self.job_id}"


class GenerationAttempt(models.Model):
    """One run of a job: the prompt and parameters it ran with, and why they changed from the
    previous attempt (the quality gate's refinement). Written when the attempt's images are."""

    job = models.ForeignKey(GenerationJob, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveSmallIntegerField()
    prompt = models.TextField()
    negative_prompt = models.TextField(blank=True)
    params = models.JSONField(help_text="cfg_scale, seeds and the image indices this attempt made.")
    refinement = models.JSONField(
        default=dict, blank=True, help_text="How and why the prompt changed (by rules or LLM)."
    )
    passed = models.BooleanField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["job", "number"]
        constraints = [
            models.UniqueConstraint(fields=["job", "number"], name="one_attempt_row_per_number")
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of job {self.job_id}"


class PendingObject(models.Model):
    """An object a worker is about to write, recorded (and committed) before the write; the
    transaction that records the image pointing at it deletes the row. A row that outlives the
    lease names an object nothing refers to — its writer crashed, storage failed part-way, or it
    lost the finish race — and ``storage_leftovers_collect`` deletes the object, then the row."""

    key = models.CharField(max_length=500, unique=True)
    job_id = models.UUIDField(db_index=True)  # not a foreign key: the row outlives a deleted job
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return self.key
