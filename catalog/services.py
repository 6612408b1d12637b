"""Writes for catalogs themselves (imports, runs, schedules and exports have their own modules)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from tenants.audit import AuditVerb
from tenants.errors import Conflict
from tenants.principal import Principal
from tenants.roles import Action
from tenants.services import audit_event_record, require

from .models import Catalog


class CatalogExists(Conflict):
    code = "catalog_exists"


def catalog_create(
    *, actor: Principal, slug: str, name: str = "", default_template: str = ""
) -> Catalog:
    """A new, empty catalog; ``CatalogExists`` (409) when the organization has one by that slug."""
    require(actor, Action.TRAIN)
    catalog = Catalog(
        organization=actor.org,
        slug=slug,
        name=name or slug,
        default_template=default_template,
        created_by=actor.person,
    )
    catalog.full_clean(exclude=["organization", "created_by"], validate_unique=False)
    if default_template:
        from generation.template_selectors import prompt_template_latest_list

        templates = prompt_template_latest_list(org=actor.org)
        if not templates.filter(application=default_template).exists():
            raise ValidationError(
                {"default_template": f"No template '{default_template}' in your organization."}
            )
    try:
        with transaction.atomic():
            catalog.save()
            audit_event_record(
                org=actor.org,
                actor=actor,
                verb=AuditVerb.CATALOG_CREATED,
                obj=catalog,
                after={"slug": slug, "name": catalog.name, "default_template": default_template},
            )
    except IntegrityError:
        raise CatalogExists(f"Your organization already has a catalog '{slug}'.") from None
    return catalog
