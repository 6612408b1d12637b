"""Writes: an organization's provenance settings."""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import transaction

from tenants.models import Organization

from .models import ProvenanceSettings


@transaction.atomic
def provenance_settings_set(
    *,
    org: Organization,
    watermark: bool | None = None,
    private_templates: Iterable[str] | None = None,
) -> ProvenanceSettings:
    """Turn the watermark on or off and name the private templates (by application slug); what
    is not given stays as it is. Applies to images stored from then on."""
    row, _ = ProvenanceSettings.objects.select_for_update().get_or_create(organization=org)
    if watermark is not None:
        row.watermark = watermark
    if private_templates is not None:
        slugs = sorted({slug.strip() for slug in private_templates if slug.strip()})
        for slug in slugs:
            try:
                validate_slug(slug)
            except ValidationError:
                raise ValidationError(
                    {"private_templates": f"'{slug}' is not a template application slug."}
                ) from None
        row.private_templates = slugs
    row.save()
    return row
