"""Writes for human review: approve or reject images (singly or in bulk) and publish approved
ones as their category's image (an image made for a catalog product is published for the product
by the catalog app, told through ``signals.image_reviewed``). Each decision is one transaction
with an audit event."""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from tenants.audit import AuditVerb
from tenants.principal import Principal
from tenants.roles import Action
from tenants.services import audit_event_record, require

from . import signals
from .models import GeneratedImage, ImageReview, JobStatus, PublishedImage, ReviewStatus

# Offered as one-click reasons in the studio; any other text is accepted too.
REJECT_REASONS = (
    "Wrong product",
    "Artifacts or distortions",
    "Off-brand style",
    "Bad composition",
    "Text or watermark in the image",
    "Low quality",
)
MAX_REASON_CHARS = 500
MAX_BULK = 200


def _gate_passed(image: GeneratedImage) -> bool | None:
    passed = (image.scores or {}).get("passed")
    return None if passed is None else bool(passed)


def _check_decision(*, actor: Principal, image: GeneratedImage, status: str, reason: str) -> str:
    if image.organization_id != actor.org.pk:
        raise ValidationError({"image": "No such image in this organization."})
    if status not in ReviewStatus.values:
        raise ValidationError(
            {"status": f"Unknown decision '{status}'; use one of {ReviewStatus.values}."}
        )
    if image.job.status != JobStatus.SUCCEEDED:
        raise ValidationError(
            {
                "image": f"Image {image.pk} belongs to a job that {image.job.status}; only images "
                "of succeeded jobs can be reviewed."
            }
        )
    reason = " ".join(reason.split())
    if status == ReviewStatus.REJECTED and not reason:
        raise ValidationError(
            {"reason": "Say why the image is rejected (pick a reason or type one)."}
        )
    if len(reason) > MAX_REASON_CHARS:
        raise ValidationError({"reason": f"Keep the reason under {MAX_REASON_CHARS} characters."})
    return reason


def _publish(*, actor: Principal, image: GeneratedImage) -> PublishedImage | None:
    category = image.job.category
    if category is None or image.job.product_ref is not None:
        return None  # a product's image is published for the product (signals.image_reviewed)
    current = (
        PublishedImage.objects.select_for_update()
        .filter(organization=actor.org, category=category)
        .first()
    )
    before = {"image": str(current.image_id)} if current else None
    if current is None:
        current = PublishedImage(organization=actor.org, category=category)
    elif current.image_id == image.pk:
        return current
    current.image = image
    current.published_by = actor.user
    current.published_at = timezone.now()
    current.save()
    audit_event_record(
        org=actor.org,
        actor=actor,
        verb=AuditVerb.IMAGE_PUBLISHED,
        obj=image,
        before=before,
        after={"category": category.slug, "image": str(image.pk)},
    )
    return current


def _unpublish(*, actor: Principal, image: GeneratedImage) -> None:
    rows = PublishedImage.objects.filter(organization=actor.org, image=image)
    for row in rows.select_related("category"):
        audit_event_record(
            org=actor.org,
            actor=actor,
            verb=AuditVerb.IMAGE_UNPUBLISHED,
            obj=image,
            before={"category": row.category.slug, "image": str(image.pk)},
        )
    rows.delete()


def _decide(*, actor: Principal, image: GeneratedImage, status: str, reason: str) -> ImageReview:
    reason = _check_decision(actor=actor, image=image, status=status, reason=reason)
    review = ImageReview.objects.select_for_update().filter(image=image).first()
    before = {"status": review.status, "reason": review.reason} if review else None
    if review is None:
        review = ImageReview(organization=actor.org, image=image)
    review.status = status
    review.reason = reason if status == ReviewStatus.REJECTED else reason[:MAX_REASON_CHARS]
    review.gate_passed = _gate_passed(image)
    review.reviewer = actor.user
    review.decided_at = timezone.now()
    review.save()
    audit_event_record(
        org=actor.org,
        actor=actor,
        verb=AuditVerb.IMAGE_APPROVED
        if status == ReviewStatus.APPROVED
        else AuditVerb.IMAGE_REJECTED,
        obj=image,
        before=before,
        after={"status": status, "reason": review.reason, "gate_passed": review.gate_passed},
    )
    if status == ReviewStatus.APPROVED:
        _publish(actor=actor, image=image)
    else:
        _unpublish(actor=actor, image=image)
    signals.image_reviewed.send(sender=GeneratedImage, image=image, status=status, actor=actor)
    return review


@transaction.atomic
def image_review_decide(
    *, actor: Principal, image: GeneratedImage, status: str, reason: str = ""
) -> ImageReview:
    """Approve or reject one image. Approving publishes it as its category's image; rejecting
    the published image unpublishes it. Deciding again replaces the decision (both audited)."""
    require(actor, Action.REVIEW)
    return _decide(actor=actor, image=image, status=status, reason=reason)


@transaction.atomic
def image_reviews_decide_bulk(
    *, actor: Principal, images: Iterable[GeneratedImage], status: str, reason: str = ""
) -> list[ImageReview]:
    """The same decision for several images, all or nothing."""
    require(actor, Action.REVIEW)
    images = list(images)
    if not images:
        raise ValidationError({"images": "Select at least one image."})
    if len(images) > MAX_BULK:
        raise ValidationError({"images": f"Decide at most {MAX_BULK} images at once."})
    return [_decide(actor=actor, image=image, status=status, reason=reason) for image in images]
