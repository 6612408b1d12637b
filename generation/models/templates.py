"""Prompt templates: per organization and application, versioned.

A template is never edited in place: an edit writes a new row with ``version + 1`` so that a job
that recorded the version it used can always show the exact text it was rendered from.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from models_registry.models import Category
from tenants.models import Organization

__all__ = ["CategoryRubric", "PromptTemplate", "QualitySettings"]


class PromptTemplate(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="prompt_templates"
    )
    application = models.SlugField(
        max_length=80, help_text="What the template is for, e.g. 'product-hero'."
    )
    version = models.PositiveIntegerField(help_text="1 for the first version; +1 per edit.")
    text = models.TextField(help_text="Prompt text with {variables}.")
    few_shot_examples = models.JSONField(
        default=list, blank=True, help_text="Example prompts whose shared phrases shape the prompt."
    )
    style = models.CharField(max_length=40, blank=True, help_text="Named style preset.")
    negative_prompt = models.TextField(blank=True)
    default_params = models.JSONField(
        default=dict, blank=True, help_text="Protocol parameters a request may override."
    )
    rubric = models.JSONField(
        default=list,
        blank=True,
        help_text="Yes/no questions for the quality gate (see generation.rubrics).",
    )
    pass_threshold = models.FloatField(
        default=0.75, help_text="Share of the rubric's weight an image needs to pass (0-1)."
    )
    max_attempts = models.PositiveSmallIntegerField(
        default=3, help_text="Attempts the gate may make, refining the prompt after each."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "application", "version"],
                name="template_version_unique_per_app",
            )
        ]
        ordering = ["application", "-version"]

    def __str__(self) -> str:
        return f"{self.application} v{self.version}"


class CategoryRubric(models.Model):
    """The quality gate's questions for every image of a category, whatever its template."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    category = models.OneToOneField(Category, on_delete=models.CASCADE, related_name="rubric")
    questions = models.JSONField(default=list, blank=True)
    pass_threshold = models.FloatField(default=0.75)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"rubric of {self.category_id}"


class QualitySettings(models.Model):
    """Which optional judges an organization uses (built-in checks and safety always run)."""

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="quality_settings"
    )
    clip_enabled = models.BooleanField(default=False)
    vlm_enabled = models.BooleanField(default=False)
    llm_refine_enabled = models.BooleanField(
        default=False, help_text="Refine prompts with the LLM endpoint instead of by rules."
    )
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"quality settings of {self.organization_id}"
