"""Tenant-scoped reads of generation jobs and images (another organization's = the same 404)."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from tenants.models import Organization
from tenants.selectors import get_for_org

from .models import GeneratedImage, GenerationAttempt, GenerationJob


def generation_job_list_for_org(*, org: Organization) -> QuerySet[GenerationJob]:
    """Jobs with every attempt's images (``job.images.all()``, by index then attempt, each with
    its review) and the attempts' records, prefetched."""
    return (
        GenerationJob.objects.filter(organization=org)
        .select_related("category", "template", "model_version", "base_model", "team")
        .prefetch_related(
            Prefetch(
                "images",
                queryset=GeneratedImage.objects.select_related("review").order_by(
                    "index", "attempt"
                ),
            ),
            Prefetch("attempt_log", queryset=GenerationAttempt.objects.order_by("number")),
        )
    )


def result_images(job: GenerationJob) -> list[GeneratedImage]:
    """The job's result: per index, its chosen image (from the prefetched images)."""
    return [image for image in job.images.all() if image.is_result]


def get_generation_job_for_org(*, org: Organization, job_id: object) -> GenerationJob:
    return get_for_org(generation_job_list_for_org(org=org), org=org, pk=job_id)


def generated_image_list_for_org(*, org: Organization) -> QuerySet[GeneratedImage]:
    return GeneratedImage.objects.filter(organization=org).select_related("job")


def get_generated_image_for_org(*, org: Organization, image_id: object) -> GeneratedImage:
    return get_for_org(generated_image_list_for_org(org=org), org=org, pk=image_id)


def image_withheld(image: GeneratedImage) -> bool:
    """A flagged image (the safety judge said so, or could not judge it) is never served."""
    return bool((image.scores or {}).get("unsafe"))
