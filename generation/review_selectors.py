"""Reads for human review, tenant-scoped: the queue of images awaiting a decision (filterable),
the reviewed gallery, published images, and how often reviewers agree with the quality gate."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q, QuerySet

from tenants.models import Organization

from .models import GeneratedImage, ImageReview, JobStatus, PublishedImage, ReviewStatus


def _final_attempts(images: QuerySet[GeneratedImage]) -> QuerySet[GeneratedImage]:
    """Only the last attempt of each image index (earlier ones were retried by the gate)."""
    later = GeneratedImage.objects.filter(
        job=OuterRef("job"), index=OuterRef("index"), attempt__gt=OuterRef("attempt")
    )
    return images.exclude(Exists(later))


def deliverable_image_list_for_org(*, org: Organization) -> QuerySet[GeneratedImage]:
    """Images a succeeded job delivered (final attempts), newest first, with their review."""
    images = GeneratedImage.objects.filter(organization=org, job__status=JobStatus.SUCCEEDED)
    return (
        _final_attempts(images)
        .select_related("job", "job__category", "job__template", "job__model_version", "review")
        .order_by("-created_at", "index")
    )


def review_queue_for_org(
    *,
    org: Organization,
    category: str = "",
    template: str = "",
    min_score: float | None = None,
    max_score: float | None = None,
) -> QuerySet[GeneratedImage]:
    """Images awaiting review: delivered, not failed by the gate, not yet decided. Oldest first,
    so the queue drains in the order images arrived."""
    queue = deliverable_image_list_for_org(org=org).filter(review__isnull=True)
    # has_key first: a row without a verdict must not vanish in SQL's NULL logic.
    queue = queue.exclude(Q(scores__has_key="passed") & Q(scores__passed=False))
    if category:
        queue = queue.filter(job__category__slug=category)
    if template:
        queue = queue.filter(job__template__application=template)
    if min_score is not None:
        queue = queue.filter(scores__score__gte=min_score)
    if max_score is not None:
        queue = queue.filter(scores__score__lte=max_score)
    return queue.order_by("created_at", "index")


def gallery_for_org(
    *, org: Organization, status: str = "", category: str = ""
) -> QuerySet[GeneratedImage]:
    """Delivered images, optionally only ``approved``/``rejected``/``pending`` ones."""
    images = deliverable_image_list_for_org(org=org)
    if status == "pending":
        images = images.filter(review__isnull=True)
    elif status in ReviewStatus.values:
        images = images.filter(review__status=status)
    if category:
        images = images.filter(job__category__slug=category)
    return images


def published_image_list_for_org(*, org: Organization) -> QuerySet[PublishedImage]:
    return PublishedImage.objects.filter(organization=org).select_related(
        "category", "image", "image__job", "published_by"
    )


def image_ids_for_org(*, org: Organization, ids: list[str]) -> QuerySet[GeneratedImage]:
    """The images among ``ids`` that belong to ``org`` (others are silently absent)."""
    valid = []
    for raw in ids:
        try:
            valid.append(str(uuid.UUID(str(raw))))
        except ValueError:
            continue
    return GeneratedImage.objects.filter(organization=org, pk__in=valid).select_related(
        "job", "job__category"
    )


@dataclass(frozen=True)
class Agreement:
    """Reviewer decisions against the gate's verdict, for images the gate scored."""

    approved_passed: int
    rejected_passed: int
    approved_failed: int
    rejected_failed: int
    unscored_approved: int
    unscored_rejected: int

    @property
    def scored(self) -> int:
        return (
            self.approved_passed
            + self.rejected_passed
            + self.approved_failed
            + self.rejected_failed
        )

    @property
    def agreed(self) -> int:
        return self.approved_passed + self.rejected_failed

    @property
    def rate(self) -> float | None:
        return self.agreed / self.scored if self.scored else None

    @property
    def approval_rate(self) -> float | None:
        decided = self.scored + self.unscored_approved + self.unscored_rejected
        approved = self.approved_passed + self.approved_failed + self.unscored_approved
        return approved / decided if decided else None


def review_agreement_for_org(*, org: Organization) -> Agreement:
    reviews = ImageReview.objects.filter(organization=org)

    def count(status: str, gate: bool | None) -> int:
        lookup = Q(gate_passed__isnull=True) if gate is None else Q(gate_passed=gate)
        return reviews.filter(lookup, status=status).count()

    return Agreement(
        approved_passed=count(ReviewStatus.APPROVED, True),
        rejected_passed=count(ReviewStatus.REJECTED, True),
        approved_failed=count(ReviewStatus.APPROVED, False),
        rejected_failed=count(ReviewStatus.REJECTED, False),
        unscored_approved=count(ReviewStatus.APPROVED, None),
        unscored_rejected=count(ReviewStatus.REJECTED, None),
    )
