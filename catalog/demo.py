"""The demo catalog for ``make run``: a ``demo`` catalog of twelve products in the demo
categories, written for the ``catalog-tile`` template and the built-in ``shapes`` model's
vocabulary, imported from ``demo_products.csv`` (also a file to try the studio's upload with).

Idempotent: importing the same file again leaves every product unchanged.
"""

from __future__ import annotations

from pathlib import Path

from tenants.principal import Principal

from .imports import catalog_import
from .models import Catalog
from .services import catalog_create

DEMO_FILE = Path(__file__).with_name("demo_products.csv")


def seed_catalog(owner: Principal) -> Catalog:
    catalog = Catalog.objects.filter(organization=owner.org, slug="demo").first()
    if catalog is None:
        catalog = catalog_create(actor=owner, slug="demo", name="Demo products")
    with DEMO_FILE.open("rb") as stream:
        catalog_import(actor=owner, catalog=catalog, stream=stream, file_name=DEMO_FILE.name)
    return catalog
