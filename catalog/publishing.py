"""Publishing per product: approving an image made for a catalog product (its job's
``product_ref``) makes it the product's image; rejecting the published image takes it down.

Generation tells us through ``generation.signals.image_reviewed``, inside the review's
transaction, so the product changes with the review or not at all. The published hash is the
product's content hash when the job was made (the run item's), so a row edited while its image
was being made still counts as changed.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from generation.models import GeneratedImage, ReviewStatus
from tenants.audit import AuditVerb
from tenants.principal import Principal
from tenants.services import audit_event_record

from .models import Product, RunItem


def product_image_reviewed(*, image: GeneratedImage, status: str, actor: Principal) -> None:
    product_ref = image.job.product_ref
    if product_ref is None:
        return
    product = (
        Product.objects.select_for_update()
        .filter(pk=product_ref, organization_id=image.organization_id)
        .first()
    )
    if product is None:  # the product was deleted since
        return
    if status == ReviewStatus.APPROVED:
        _publish(product, image, actor)
    elif product.published_image_id == image.pk:
        _unpublish(product, image, actor)


def _publish(product: Product, image: GeneratedImage, actor: Principal) -> None:
    if product.published_image_id == image.pk:
        return
    item = RunItem.objects.filter(job_id=image.job_id).only("content_hash").first()
    before: dict[str, Any] | None = (
        {"image": str(product.published_image_id)} if product.published_image_id else None
    )
    product.published_image = image
    product.published_hash = (item.content_hash if item else "") or product.content_hash
    product.published_at = timezone.now()
    product.save(update_fields=["published_image", "published_hash", "published_at"])
    audit_event_record(
        org=actor.org,
        actor=actor,
        verb=AuditVerb.IMAGE_PUBLISHED,
        obj=image,
        before=before,
        after={"catalog": product.catalog_id, "sku": product.sku, "image": str(image.pk)},
    )


def _unpublish(product: Product, image: GeneratedImage, actor: Principal) -> None:
    product.published_image = None
    product.published_hash = ""
    product.published_at = None
    product.save(update_fields=["published_image", "published_hash", "published_at"])
    audit_event_record(
        org=actor.org,
        actor=actor,
        verb=AuditVerb.IMAGE_UNPUBLISHED,
        obj=image,
        before={"catalog": product.catalog_id, "sku": product.sku, "image": str(image.pk)},
    )
