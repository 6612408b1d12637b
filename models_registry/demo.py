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
from .builtin import SHAPES, SHAPES_GLIGEN, TINY, TINY_GLIGEN, build_tiny_model
from .models import BaseModel, BuildStatus, Category, Family

DEMO_CATEGORIES = (
    ("produce", "Produce", "xqprd"),
    ("bakery", "Bakery", "xqbkr"),
    ("meat", "Meat & Seafood", "xqmt"),
)
# A build row untouched for this long is assumed dead (its worker was killed) and queued again.
STALE_BUILD = timedelta(minutes=15)


def seed_registry(org: Organization, owner_principal: Principal) -> list[Category]:
    """Register ``tiny``, create the demo categories, and queue the ``shapes`` build."""
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
    if shapes is None:
        queue_shapes_build()
    return categories


def _build_under_way() -> bool:
    row = BaseModel.objects.filter(name=SHAPES, status=BuildStatus.BUILDING).first()
    if row is None:
        return False
    updated = (row.build_progress or {}).get("updated_at") or row.created_at.isoformat()
    try:
        last = timezone.datetime.fromisoformat(updated)
    except ValueError:
        return False
    return timezone.now() - last < STALE_BUILD


def queue_shapes_build() -> bool:
    """Enqueue the shapes build on commit unless one is already running. True if queued."""
    if _build_under_way():
        return False
    from .tasks import build_builtin_model_task

    services.base_model_mark_building(
        name=SHAPES,
        family=Family.TINY,
        description="Small Stable Diffusion model trained offline on synthetic product shots.",
    )
    # The train queue runs one task at a time: shapes first, then its GLIGEN variant from it.
    transaction.on_commit(lambda: build_builtin_model_task.delay(SHAPES))
    transaction.on_commit(lambda: build_builtin_model_task.delay(SHAPES_GLIGEN))
    return True
