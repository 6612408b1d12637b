"""Images an organization uploads to vary: sources of image-to-image and inpainting, and masks."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from tenants.models import ApiKey, Organization

__all__ = ["Upload", "UploadKind"]


class UploadKind(models.TextChoices):
    IMAGE = "image", "Source image"
    MASK = "mask", "Inpainting mask (white repaints)"


class Upload(models.Model):
    """One validated, normalized upload (PNG in object storage; the hash is of the file sent)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=8, choices=UploadKind.choices)
    file_name = models.CharField(max_length=255)
    storage_key = models.CharField(max_length=300)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.PositiveIntegerField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "kind", "created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} upload {self.file_name}"
