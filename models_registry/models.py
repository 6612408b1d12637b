"""The model registry: platform-wide base models, per-organization categories, model versions
(full checkpoints or LoRA adapters), and the ``production``/``staging`` alias of each category
with an append-only history ("what served category X on date D")."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from tenants.models import ApiKey, Organization


class Family(models.TextChoices):
    TINY = "tiny", "Tiny (built-in, CPU)"
    SD15 = "sd15", "Stable Diffusion 1.x"
    SDXL = "sdxl", "Stable Diffusion XL"


class BuildStatus(models.TextChoices):
    BUILDING = "building", "Building"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class BaseModel(models.Model):
    """A base pipeline (diffusers format) every organization may use."""

    name = models.SlugField(max_length=80, unique=True)
    family = models.CharField(max_length=8, choices=Family.choices)
    description = models.TextField(blank=True)
    artifact_uri = models.CharField(max_length=500, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    # Native width/height, steps, cfg_scale, scheduler (and guidance_rescale) for this model.
    default_params = models.JSONField(default=dict)
    # The UNet has GLIGEN's gated self-attention: it can place phrases in boxes (``layout``).
    grounded = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=BuildStatus.choices, default=BuildStatus.READY)
    # For built-in models built in the background: stage, step, total, metrics, error.
    build_progress = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.family})"


class Category(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="categories"
    )
    slug = models.SlugField(max_length=80)
    name = models.CharField(max_length=200)
    trigger_token = models.CharField(
        max_length=40, blank=True, help_text="Rare token a fine-tune binds to, e.g. 'sks'."
    )
    base_model = models.ForeignKey(
        BaseModel,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Served when the category has no production version yet.",
    )
    default_template = models.CharField(
        max_length=80, blank=True, help_text="Application slug of the default prompt template."
    )
    auto_promote = models.BooleanField(
        default=False,
        help_text="Promote a fine-tuned candidate to production when its validation images pass "
        "the quality gate more often than production's on the same prompts and seeds.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "slug"], name="category_slug_unique_per_org"
            )
        ]
        ordering = ["name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class VersionKind(models.TextChoices):
    FULL = "full", "Full checkpoint"
    LORA = "lora", "LoRA adapter"


class VersionStatus(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    STAGING = "staging", "Staging"
    PRODUCTION = "production", "Production"
    ARCHIVED = "archived", "Archived"


class ModelVersion(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="model_versions"
    )
    category = models.ForeignKey(Category, on_delete=models.CASCADE, related_name="versions")
    base = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="versions")
    kind = models.CharField(max_length=8, choices=VersionKind.choices)
    label = models.CharField(max_length=120, blank=True)
    artifact_uri = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField(default=0)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    # training depends on the registry, so the link back is a plain id (no FK cycle).
    training_job_id = models.UUIDField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=12, choices=VersionStatus.choices, default=VersionStatus.CANDIDATE
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "category", "status"])]

    def __str__(self) -> str:
        return f"{self.category.slug} v{self.pk} ({self.kind})"


class AliasName(models.TextChoices):
    PRODUCTION = "production", "Production"
    STAGING = "staging", "Staging"


class Alias(models.Model):
    category = models.ForeignKey(Category, on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(max_length=12, choices=AliasName.choices)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="aliases")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["category", "name"], name="one_alias_per_name")
        ]
        verbose_name_plural = "aliases"

    def __str__(self) -> str:
        return f"{self.category.slug}@{self.name} → v{self.version_id}"


class AliasHistory(models.Model):
    """Append-only: one row per move of an alias. Never updated or deleted by services."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    category = models.ForeignKey(Category, on_delete=models.CASCADE, related_name="alias_history")
    alias_name = models.CharField(max_length=12, choices=AliasName.choices)
    action = models.CharField(max_length=12)  # promote | rollback
    from_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    to_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "alias history"

    def __str__(self) -> str:
        moved = f"v{self.from_version_id} → v{self.to_version_id}"
        return f"{self.at:%Y-%m-%d %H:%M} {self.alias_name} {self.action} {moved}"
