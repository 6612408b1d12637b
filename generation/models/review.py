"""Human review of generated images, and the image each category publishes.

An ``ImageReview`` is the current decision on one image (approved or rejected, with a reason);
every decision is also written to the audit log, so changing one's mind leaves a trace. It keeps
what the quality gate said at the time (``gate_passed``) so reviewer-vs-gate agreement can be
reported even if an image is re-scored later.

A ``PublishedImage`` is the approved image a category shows. Approving an image of a category
makes it that category's published image (the newest approval wins).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from models_registry.models import Category
from tenants.models import Organization

from .jobs import GeneratedImage

__all__ = ["ImageReview", "PublishedImage", "ReviewStatus"]


class ReviewStatus(models.TextChoices):
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class ImageReview(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    image = models.OneToOneField(GeneratedImage, on_delete=models.CASCADE, related_name="review")
    status = models.CharField(max_length=10, choices=ReviewStatus.choices)
    reason = models.CharField(max_length=500, blank=True)
    gate_passed = models.BooleanField(
        null=True, blank=True, help_text="The quality gate's verdict when the decision was made."
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-decided_at"]
        indexes = [models.Index(fields=["organization", "status", "-decided_at"])]

    def __str__(self) -> str:
        return f"{self.status} image {self.image_id}"


class PublishedImage(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    category = models.ForeignKey(Category, on_delete=models.CASCADE, related_name="+")
    image = models.ForeignKey(GeneratedImage, on_delete=models.CASCADE, related_name="+")
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    published_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "category"], name="one_published_image_per_category"
            )
        ]

    def __str__(self) -> str:
        return f"{self.category} → image {self.image_id}"
