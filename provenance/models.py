"""Per-organization provenance choices: whether images carry the invisible watermark, and which
templates are private (their prompts never leave Easel in an image's metadata)."""

from __future__ import annotations

from django.db import models

from tenants.models import Organization


class ProvenanceSettings(models.Model):
    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="provenance_settings"
    )
    watermark = models.BooleanField(
        default=False,
        help_text="Embed an invisible watermark (the image id) in every image of at least "
        "256×256 pixels.",
    )
    private_templates = models.JSONField(
        default=list,
        blank=True,
        help_text="Template applications (slugs) whose prompts are left out of images' "
        "content credentials and metadata.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "provenance settings"
        verbose_name_plural = "provenance settings"

    def __str__(self) -> str:
        return f"provenance settings of {self.organization_id}"
