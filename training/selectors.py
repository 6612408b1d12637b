"""Tenant-scoped reads of fine-tuning jobs (another organization's job is the same 404)."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from tenants.models import Organization
from tenants.selectors import get_for_org

from .models import TrainingImage, TrainingJob, ValidationImage


def training_job_list_for_org(*, org: Organization) -> QuerySet[TrainingJob]:
    return (
        TrainingJob.objects.filter(organization=org)
        .select_related("category", "base_model", "output_version", "created_by")
        .prefetch_related(
            Prefetch("images", queryset=TrainingImage.objects.order_by("index")),
            Prefetch(
                "validation",
                queryset=ValidationImage.objects.select_related("model_version").order_by(
                    "prompt", "seed"
                ),
            ),
        )
    )


def get_training_job_for_org(*, org: Organization, job_id: object) -> TrainingJob:
    return get_for_org(training_job_list_for_org(org=org), org=org, pk=job_id)


def get_validation_image_for_org(*, org: Organization, image_id: object) -> ValidationImage:
    return get_for_org(ValidationImage.objects.all(), org=org, pk=image_id)
