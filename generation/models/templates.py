"""Prompt templates: per organization and application, versioned.

A template is never edited in place: an edit writes a new row with ``version + 1`` so that a job
that recorded the version it used can always show the exact text it was rendered from.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from tenants.models import Organization

__all__ = ["PromptTemplate"]


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
        default=list, blank=True, help_text="Yes/no questions for the quality gate."
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
