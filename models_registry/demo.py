"""Demo registry for ``make run``: the ``tiny`` base model and its GLIGEN variant (built here if
needed), three product categories, and the ``shapes`` build, then its grounded variant
``shapes-gligen``, queued in the background until they are ready.

Idempotent: running it again creates nothing twice and queues no second build while one is
under way.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from tenants.models import Organization
from tenants.principal import Principal

from . import services
from .builtin import (
    SHAPES,
    SHAPES_DESCRIPTION,
    SHAPES_GLIGEN,
    SHAPES_GLIGEN_DESCRIPTION,
    TINY,
    TINY_GLIGEN,
    build_tiny_model,
)
from .models import BaseModel, BuildStatus, Category, Family

DEMO_CATEGORIES = (
    ("produce", "Produce", "xqprd"),
    ("bakery", "Bakery", "xqbkr"),
    ("meat", "Meat & Seafood", "xqmt"),
)
# A build row untouched for this long is assumed dead (its worker was killed) and queued again.
STALE_BUILD = timedelta(minutes=15)


def seed_registry(org: Organization, owner_principal: Principal) -> list[Category]:
    """Register ``tiny`` and ``tiny-gligen``, create the demo categories, and queue the builds
    of ``shapes`` and ``shapes-gligen`` that are missing."""
    tiny = BaseModel.objects.filter(name=TINY, status=BuildStatus.READY).first() or (
        build_tiny_model()
    )
    if not BaseModel.objects.filter(name=TINY_GLIGEN, status=BuildStatus.READY).exists():
        build_tiny_model(grounded=True)
    shapes = BaseModel.objects.filter(name=SHAPES, status=BuildStatus.READY).first()
    serving = shapes if shapes is not None and org.default_model == SHAPES else tiny
    categories = []
    for slug, name, token in DEMO_CATEGORIES:
        category = Category.objects.filter(organization=org, slug=slug).first()
        if category is None:
            category = services.category_create(
                actor=owner_principal,
                slug=slug,
                name=name,
                trigger_token=token,
                base_model=serving,
            )
        categories.append(category)
    queue_builds()
    return categories


def _build_under_way(name: str) -> bool:
    row = BaseModel.objects.filter(name=name, status=BuildStatus.BUILDING).first()
    if row is None:
        return False
    updated = (row.build_progress or {}).get("updated_at") or row.created_at.isoformat()
    try:
        last = timezone.datetime.fromisoformat(updated)
    except ValueError:
        return False
    return timezone.now() - last < STALE_BUILD


def queue_builds() -> list[str]:
    """Enqueue, on commit, the build of each trained built-in that is neither ready nor being
    built: ``shapes``, then its GLIGEN variant (the train queue runs one task at a time, so the
    variant finds ``shapes`` in the cache). Returns the names queued."""
    from .tasks import build_builtin_model_task

    queued = []
    for name, description in (
        (SHAPES, SHAPES_DESCRIPTION),
        (SHAPES_GLIGEN, SHAPES_GLIGEN_DESCRIPTION),
    ):
        ready = BaseModel.objects.filter(name=name, status=BuildStatus.READY).exists()
        if ready or _build_under_way(name):
            continue
        services.base_model_mark_building(name=name, family=Family.TINY, description=description)
        transaction.on_commit(lambda name=name: build_builtin_model_task.delay(name))
        queued.append(name)
    return queued
