"""Celery tasks of the registry (routed to the ``train`` queue by the Celery wiring)."""

from __future__ import annotations

from typing import Any

from celery import shared_task


@shared_task(name="models_registry.tasks.build_builtin_model_task")
def build_builtin_model_task(name: str, overrides: dict[str, Any] | None = None) -> int:
    """Build (or reuse the cached build of) the built-in base model ``name`` and register it.

    Idempotent: a finished build is reused from the build cache, and a second worker waits on
    the first one's lock instead of training twice. Returns the BaseModel id.
    """
    from .builtin import build_builtin_model

    return build_builtin_model(name, overrides=overrides).pk
