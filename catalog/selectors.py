"""Tenant-scoped reads of catalogs, products, imports, runs and schedules (another
organization's row is the same 404 as a missing one)."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from tenants.models import Organization
from tenants.selectors import get_for_org

from .models import Catalog, CatalogImport, CatalogRun, CatalogSchedule, Product, RunItem


def catalog_list_for_org(*, org: Organization) -> QuerySet[Catalog]:
    return Catalog.objects.filter(organization=org).annotate(product_count=Count("products"))


def get_catalog_for_org(*, org: Organization, slug: str) -> Catalog:
    return get_for_org(catalog_list_for_org(org=org), org=org, slug=slug)


def product_list_for_catalog(*, catalog: Catalog) -> QuerySet[Product]:
    return Product.objects.filter(catalog=catalog).select_related("category", "published_image")


def get_product_for_org(*, org: Organization, product_id: object) -> Product:
    return get_for_org(
        Product.objects.select_related("catalog", "category"), org=org, pk=product_id
    )


def catalog_import_list_for_org(*, org: Organization) -> QuerySet[CatalogImport]:
    return CatalogImport.objects.filter(organization=org).select_related("catalog", "created_by")


def get_catalog_import_for_org(*, org: Organization, import_id: object) -> CatalogImport:
    return get_for_org(catalog_import_list_for_org(org=org), org=org, pk=import_id)


def catalog_run_list_for_org(*, org: Organization) -> QuerySet[CatalogRun]:
    return CatalogRun.objects.filter(organization=org).select_related(
        "catalog", "schedule", "created_by"
    )


def get_catalog_run_for_org(*, org: Organization, run_id: object) -> CatalogRun:
    return get_for_org(catalog_run_list_for_org(org=org), org=org, pk=run_id)


def run_item_list(*, run: CatalogRun) -> QuerySet[RunItem]:
    return run.items.select_related("product", "job").order_by("id")


def catalog_schedule_list_for_org(*, org: Organization) -> QuerySet[CatalogSchedule]:
    """Schedules with their beat rows and clocks: ``schedules.next_run_at`` reads the clock of
    each (the interval's or the crontab's row), which would otherwise be a query per schedule."""
    return CatalogSchedule.objects.filter(organization=org).select_related(
        "catalog", "periodic_task", "periodic_task__interval", "periodic_task__crontab"
    )


def get_catalog_schedule_for_org(*, org: Organization, schedule_id: object) -> CatalogSchedule:
    return get_for_org(catalog_schedule_list_for_org(org=org), org=org, pk=schedule_id)
