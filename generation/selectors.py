"""Tenant-scoped reads of generation jobs and images (another organization's = the same 404)."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from tenants.models import Organization
from tenants.selectors import get_for_org

from .models import GeneratedImage, GenerationJob


def generation_job_list_for_org(*, org: Organization) -> QuerySet[GenerationJob]:
    return (
        GenerationJob.objects.filter(organization=org)
        .select_related("category", "template", "model_version", "base_model", "team")
        .prefetch_related(Prefetch("images", queryset=GeneratedImage.objects.order_by("index")))
    )


def get_generation_job_for_org(*, org: Organization, job_id: object) -> GenerationJob:
    return get_for_org(generation_job_list_for_org(org=org), org=org, pk=job_id)


def generated_image_list_for_org(*, org: Organization) -> QuerySet[GeneratedImage]:
    return GeneratedImage.objects.filter(organization=org).select_related("job")


def get_generated_image_for_org(*, org: Organization, image_id: object) -> GeneratedImage:
    return get_for_org(generated_image_list_for_org(org=org), org=org, pk=image_id)
