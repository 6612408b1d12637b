"""Product catalogs, their imports, bulk runs and schedules.

A ``Catalog`` holds ``Product`` rows upserted by SKU from CSV/JSONL imports; each product keeps a
``content_hash`` of what generation depends on (name, category, template, attributes), so an
unchanged row is recognized and a ``changed`` run finds the products edited since their image
was approved. A ``CatalogRun`` makes one ``RunItem`` per selected product (unique per run, so a
product is never generated twice in one run) and submits their generation jobs in chunks onto the
``bulk`` queue; a ``CatalogSchedule`` starts runs through django-celery-beat.

A run moves ``pending → running → completed | canceled``, with ``running ⇄ paused``; an item
``queued → submitted → succeeded | failed | failed_quality | canceled`` (or ``queued → failed`` when
its job cannot be created, with the reason, or ``queued → canceled``).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from generation.models import GeneratedImage, GenerationJob
from models_registry.models import Category
from tenants.models import ApiKey, Organization, Team

__all__ = [
    "Catalog",
    "CatalogImport",
    "CatalogRun",
    "CatalogSchedule",
    "ImportRejection",
    "ItemStatus",
    "Product",
    "RunItem",
    "RunMode",
    "RunStatus",
]

MAX_SKU_CHARS = 100
MAX_NAME_CHARS = 300


class Catalog(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    slug = models.SlugField(max_length=80)
    name = models.CharField(max_length=200)
    default_template = models.SlugField(
        max_length=80,
        blank=True,
        help_text="Template application for rows that name none; empty: the product's name is "
        "the prompt.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="catalog_slug_per_org")
        ]
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Product(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    catalog = models.ForeignKey(Catalog, on_delete=models.CASCADE, related_name="products")
    sku = models.CharField(max_length=MAX_SKU_CHARS)
    name = models.CharField(max_length=MAX_NAME_CHARS)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="+")
    template = models.SlugField(
        max_length=80, blank=True, help_text="Template application; empty: the catalog's default."
    )
    attributes = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=64)
    published_image = models.ForeignKey(
        GeneratedImage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The content hash the published image was made from: a ``changed`` run picks the products
    # whose content moved on since.
    published_hash = models.CharField(max_length=64, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["catalog", "sku"], name="product_sku_per_catalog")
        ]
        ordering = ["sku"]

    def __str__(self) -> str:
        return self.sku


class CatalogImport(models.Model):
    """One uploaded file and what became of its rows (the rejected ones in ``rejections``)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    catalog = models.ForeignKey(Catalog, on_delete=models.CASCADE, related_name="imports")
    file_name = models.CharField(max_length=255)
    file_format = models.CharField(max_length=8)
    rows_total = models.PositiveIntegerField(default=0)
    rows_created = models.PositiveIntegerField(default=0)
    rows_updated = models.PositiveIntegerField(default=0)
    rows_unchanged = models.PositiveIntegerField(default=0)
    rows_rejected = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"import {self.pk} of {self.file_name}"

    @property
    def rows_accepted(self) -> int:
        return self.rows_created + self.rows_updated + self.rows_unchanged


class ImportRejection(models.Model):
    catalog_import = models.ForeignKey(
        CatalogImport, on_delete=models.CASCADE, related_name="rejections"
    )
    line = models.PositiveIntegerField(help_text="Line of the file the row starts on (1-based).")
    sku = models.CharField(max_length=MAX_SKU_CHARS, blank=True)
    reason = models.CharField(max_length=500)

    class Meta:
        ordering = ["line"]

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class RunMode(models.TextChoices):
    ALL = "all", "Every product"
    MISSING = "missing", "Products without an approved image"
    CHANGED = "changed", "Products changed since their image was approved"


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    CANCELED = "canceled", "Canceled"


RUN_FINISHED = (RunStatus.COMPLETED, RunStatus.CANCELED)


class ItemStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SUBMITTED = "submitted", "Submitted"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    FAILED_QUALITY = "failed_quality", "Failed the quality gate"
    CANCELED = "canceled", "Canceled"


ITEM_FINISHED = (
    ItemStatus.SUCCEEDED,
    ItemStatus.FAILED,
    ItemStatus.FAILED_QUALITY,
    ItemStatus.CANCELED,
)


class ExportStatus(models.TextChoices):
    NONE = "", "Not requested"
    BUILDING = "building", "Building"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class CatalogRun(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    catalog = models.ForeignKey(Catalog, on_delete=models.CASCADE, related_name="runs")
    mode = models.CharField(max_length=8, choices=RunMode.choices)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.PENDING)
    schedule = models.ForeignKey(
        "CatalogSchedule", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
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
    # Why a run stopped submitting on its own (e.g. the quota ran out): shown until resumed.
    paused_reason = models.CharField(max_length=300, blank=True)
    items_total = models.PositiveIntegerField(default=0)
    export_status = models.CharField(
        max_length=10, choices=ExportStatus.choices, default=ExportStatus.NONE, blank=True
    )
    export_manifest_key = models.CharField(max_length=300, blank=True)
    export_zip_key = models.CharField(max_length=300, blank=True)
    export_error = models.CharField(max_length=500, blank=True)
    # When the latest build was asked for: a build of an older request does not overwrite it.
    export_requested_at = models.DateTimeField(null=True, blank=True)
    exported_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        # The run list, newest first, and its status and catalog filters (a schedule every
        # few minutes makes tens of thousands of runs a year).
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="run_org_created"),
            models.Index(fields=["organization", "status", "-created_at"], name="run_org_status"),
            models.Index(fields=["organization", "catalog", "-created_at"], name="run_org_catalog"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.catalog_id}"

    @property
    def is_finished(self) -> bool:
        return self.status in RUN_FINISHED


class RunItem(models.Model):
    run = models.ForeignKey(CatalogRun, on_delete=models.CASCADE, related_name="items")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="run_items")
    status = models.CharField(max_length=16, choices=ItemStatus.choices, default=ItemStatus.QUEUED)
    job = models.OneToOneField(
        GenerationJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="run_item"
    )
    # The product's content hash when its job was made: approving the image publishes it with
    # this hash, so an edit made while the job ran still counts as a change.
    content_hash = models.CharField(max_length=64, blank=True)
    error = models.CharField(max_length=500, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "product"], name="one_item_per_product_per_run")
        ]
        indexes = [
            # "the run's next queued items in order": an index scan, whatever the statistics say
            models.Index(fields=["run", "status", "id"]),
            models.Index(fields=["organization", "status"]),
        ]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"item {self.pk} ({self.status})"


class CatalogSchedule(models.Model):
    """Runs a catalog in ``mode`` on a cron expression or every N minutes, in ``time_zone``;
    ``periodic_task`` is django-celery-beat's row, kept in step by ``catalog.schedules``."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    catalog = models.ForeignKey(Catalog, on_delete=models.CASCADE, related_name="schedules")
    mode = models.CharField(max_length=8, choices=RunMode.choices, default=RunMode.MISSING)
    cron = models.CharField(
        max_length=100, blank=True, help_text="Five fields: minute hour day month weekday."
    )
    interval_minutes = models.PositiveIntegerField(null=True, blank=True)
    time_zone = models.CharField(max_length=64, default="UTC")
    enabled = models.BooleanField(default=True)
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_run_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"schedule {self.pk} of {self.catalog_id}"
