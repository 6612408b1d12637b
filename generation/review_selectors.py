"""Reads for human review, tenant-scoped: the queue of images awaiting a decision (filterable),
the reviewed gallery, published images, and how often reviewers agree with the quality gate."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from tenants.models import Organization

from .models import GeneratedImage, ImageReview, JobStatus, PublishedImage, ReviewStatus

NO_TEMPLATE = "(no template)"


def deliverable_image_list_for_org(*, org: Organization) -> QuerySet[GeneratedImage]:
    """Images a succeeded job delivered (per index, its result: the best attempt that passed the
    gate), newest first, with their review."""
    images = GeneratedImage.objects.filter(
        organization=org, job__status=JobStatus.SUCCEEDED, is_result=True
    )
    return images.select_related(
        "job", "job__category", "job__template", "job__model_version", "review"
    ).order_by("-created_at", "index")


def _not_reviewed() -> Exists:
    """No decision yet, as NOT EXISTS: PostgreSQL plans it as an anti-join and estimates it from
    the reviews' statistics. ``review__isnull=True`` (a left join and ``review.id IS NULL``) is
    estimated at one row, so the planner hashed every review instead of reading the queue's
    index in order and stopping after a page (684 ms vs a few at 100,000 images)."""
    return ~Exists(ImageReview.objects.filter(image=OuterRef("pk")))


def review_queue_for_org(
    *,
    org: Organization,
    category: str = "",
    template: str = "",
    min_score: float | None = None,
    max_score: float | None = None,
    product_ref: int | None = None,
    jobs: QuerySet | None = None,
) -> QuerySet[GeneratedImage]:
    """Images awaiting review: delivered, not failed by the gate, not yet decided. Oldest first,
    so the queue drains in the order images arrived. ``product_ref`` keeps a catalog product's
    images, ``jobs`` (ids, e.g. a catalog run's as a subquery) those of these jobs."""
    queue = deliverable_image_list_for_org(org=org).filter(_not_reviewed())
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
    if product_ref is not None:
        queue = queue.filter(job__product_ref=product_ref)
    if jobs is not None:
        queue = queue.filter(job_id__in=jobs)
    return queue.order_by("created_at", "index")


def gallery_for_org(
    *, org: Organization, status: str = "", category: str = ""
) -> QuerySet[GeneratedImage]:
    """Delivered images, optionally only ``approved``/``rejected``/``pending`` ones."""
    images = deliverable_image_list_for_org(org=org)
    if status == "pending":
        images = images.filter(_not_reviewed())
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

    @classmethod
    def total(cls, parts: Iterable[Agreement]) -> Agreement:
        parts = list(parts)
        return cls(
            **{name: sum(getattr(p, name) for p in parts) for name in cls.__dataclass_fields__}
        )

    @property
    def approval_rate(self) -> float | None:
        decided = self.scored + self.unscored_approved + self.unscored_rejected
        approved = self.approved_passed + self.approved_failed + self.unscored_approved
        return approved / decided if decided else None


def review_agreement_by_template(*, org: Organization | None) -> dict[str, Agreement]:
    """Reviewer-vs-gate `Agreement` per template application (`NO_TEMPLATE` for images of jobs
    without one), from one grouped query over the reviews of ``org`` (of every organization when
    None: the platform-wide figure ``manage.py evaluate_gate`` prints for staff)."""
    reviews = (
        ImageReview.objects.all() if org is None else ImageReview.objects.filter(organization=org)
    )
    rows = (
        reviews.values("image__job__template__application", "status", "gate_passed")
        .annotate(count=Count("pk"))
        .order_by()
    )
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        application = row["image__job__template__application"] or NO_TEMPLATE
        approved = row["status"] == ReviewStatus.APPROVED
        gate = row["gate_passed"]
        if gate is None:
            cell = "unscored_approved" if approved else "unscored_rejected"
        else:
            cell = f"{'approved' if approved else 'rejected'}_{'passed' if gate else 'failed'}"
        cells = counts.setdefault(application, {})
        cells[cell] = cells.get(cell, 0) + row["count"]
    names = Agreement.__dataclass_fields__
    return {
        application: Agreement(**{name: cells.get(name, 0) for name in names})
        for application, cells in sorted(counts.items())
    }


def review_agreement_for_org(*, org: Organization) -> Agreement:
    return Agreement.total(review_agreement_by_template(org=org).values())
