"""Catalog fixtures: a ``produce`` category on the tiny model, a ``listing`` template with
variables, an empty catalog, CSV building, and enqueues recorded instead of sent."""

from __future__ import annotations

import io
from collections.abc import Iterator
from unittest import mock

import pytest

from catalog.services import catalog_create
from generation.template_services import prompt_template_create
from models_registry import services as registry

HEADER = "sku,name,category,template,colour\n"


def csv_file(rows: list[str], header: str = HEADER, name: str = "products.csv") -> io.BytesIO:
    data = io.BytesIO((header + "".join(r + "\n" for r in rows)).encode())
    data.name = name
    return data


def good_rows(n: int, *, colour: str = "red", start: int = 1) -> list[str]:
    return [f"SKU-{i:03d},Apple {i},produce,listing,{colour}" for i in range(start, start + n)]


@pytest.fixture
def produce(owner, tiny_base_model):  # type: ignore[no-untyped-def]
    return registry.category_create(
        actor=owner.principal, slug="produce", name="Produce", base_model=tiny_base_model
    )


@pytest.fixture
def listing(owner):  # type: ignore[no-untyped-def]
    return prompt_template_create(
        actor=owner.principal, application="listing", text="a {colour} {name}, studio photo"
    )


@pytest.fixture
def catalog(owner, produce, listing):  # type: ignore[no-untyped-def]
    return catalog_create(actor=owner.principal, slug="spring", name="Spring range")


@pytest.fixture
def sent() -> Iterator[dict[str, list]]:
    """What the catalog and generation would send to Celery, by kind; nothing is sent."""
    record: dict[str, list] = {"start": [], "advance": [], "export": [], "generation": []}
    with (
        mock.patch("catalog.tasks.enqueue_run_start", lambda run: record["start"].append(run.pk)),
        mock.patch(
            "catalog.tasks.enqueue_run_advance", lambda run_id: record["advance"].append(run_id)
        ),
        mock.patch(
            "catalog.tasks.enqueue_export",
            lambda run_id, announce=False: record["export"].append((run_id, announce)),
        ),
        mock.patch(
            "generation.tasks.enqueue_generation",
            side_effect=lambda *, job, countdown=None: record["generation"].append(job.pk),
        ),
    ):
        yield record
