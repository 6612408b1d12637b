"""The built-in base models, built offline and registered like any other:

- ``tiny``: random weights, built in under a second (``engine.tiny``); fast tests and first boot.
- ``shapes``: trained for a few minutes on synthetic product shots (``engine.shapes_train``),
  built once per config into ``EASEL_BUILD_CACHE_DIR`` and reused. While it trains, its
  ``BaseModel`` row says ``building`` with ``build_progress`` (stage, step, total, metrics) so a
  person can follow it; when it is ready the demo organization switches from ``tiny`` to it.

Worker-side code: torch is imported inside the functions, never when this module is imported.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import json
import logging
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from tenants.audit import AuditVerb
from tenants.models import Organization
from tenants.services import audit_event_record

from . import services
from .models import BaseModel, BuildStatus, Category, Family

logger = logging.getLogger(__name__)

TINY = "tiny"
TINY_GLIGEN = "tiny-gligen"
SHAPES = "shapes"
SHAPES_GLIGEN = "shapes-gligen"
BUILTIN_NAMES = (TINY, TINY_GLIGEN, SHAPES, SHAPES_GLIGEN)
TINY_SEED = 0
DEMO_ORG_SLUG = "demo"
PROGRESS_INTERVAL_SECONDS = 1.0
# echo(stage, step, total, metrics): e.g. a command printing progress as the row is updated.
ProgressEcho = Callable[[str, int, int, dict[str, float]], None]


def build_cache_root() -> Path:
    return Path(settings.EASEL_BUILD_CACHE_DIR).expanduser()


def _read_defaults(folder: Path) -> dict[str, Any]:
    path = folder / "easel.json"
    return json.loads(path.read_text()) if path.is_file() else {}


# --- tiny ---------------------------------------------------------------------------------------


def tiny_pipeline_dir(*, grounded: bool = False) -> Path:
    """Where the tiny build (or its GLIGEN variant) lives; it depends on the diffusers version
    that wrote it."""
    version = importlib.metadata.version("diffusers")
    name = TINY_GLIGEN if grounded else TINY
    return build_cache_root() / f"{name}-seed{TINY_SEED}-diffusers{version}"


def ensure_tiny_pipeline(*, grounded: bool = False) -> Path:
    """Build the tiny pipeline unless a complete build is cached (safe across processes)."""
    out = tiny_pipeline_dir(grounded=grounded)
    if (out / "model_index.json").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with (out.parent / f".{out.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "model_index.json").is_file():
            from .engine.tiny import build_tiny_pipeline

            build_tiny_pipeline(out, seed=TINY_SEED, grounded=grounded)
    return out


def build_tiny_model(*, grounded: bool = False) -> BaseModel:
    """Build (or reuse) the tiny pipeline and register it as the ``tiny`` base model (or, with
    ``grounded``, its GLIGEN variant ``tiny-gligen``: the same weights plus random box layers)."""
    folder = ensure_tiny_pipeline(grounded=grounded)
    what = "Random-weight Stable Diffusion pipeline (64×64): draws noise, fast tests."
    return services.base_model_register(
        name=TINY_GLIGEN if grounded else TINY,
        family=Family.TINY,
        source_path=folder,
        default_params=_read_defaults(folder),
        description=f"{what} With random GLIGEN layers: takes a layout." if grounded else what,
    )


# --- shapes -------------------------------------------------------------------------------------


def shapes_config(overrides: dict[str, Any] | None = None) -> Any:
    from .engine.shapes_train import ShapesConfig

    overrides = dict(overrides or {})
    known = {f.name for f in fields(ShapesConfig) if f.init}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"Unknown shapes settings {unknown}; known: {sorted(known)}.")
    return ShapesConfig(**overrides)


SHAPES_DESCRIPTION = "Small Stable Diffusion model trained offline on synthetic product shots."
SHAPES_GLIGEN_DESCRIPTION = (
    "The shapes model with GLIGEN layers trained on shots with known boxes: follows a layout."
)


def _build_and_register(
    name: str, make_config: Callable[[], Any], *, description: str, echo: ProgressEcho | None
) -> BaseModel:
    """Build (or reuse) a cached built-in pipeline and register it as ``name``, its row saying
    ``building`` with progress meanwhile and ``failed`` with the error if the build fails."""
    from .engine.build_cache import cached_build

    services.base_model_mark_building(name=name, family=Family.TINY, description=description)
    try:
        folder = cached_build(make_config(), build_cache_root(), _ProgressRecorder(name, echo))
        base = services.base_model_register(
            name=name,
            family=Family.TINY,
            source_path=folder,
            default_params=_read_defaults(folder),
            description=description,
        )
    except Exception as exc:
        logger.exception("building the %s model failed", name)
        services.base_model_mark_failed(name=name, error=f"{type(exc).__name__}: {exc}")
        raise
    build = (
        json.loads((folder / "build.json").read_text()) if (folder / "build.json").is_file() else {}
    )
    BaseModel.objects.filter(pk=base.pk).update(
        build_progress={
            "stage": "ready",
            "build_seconds": build.get("build_seconds"),
            "metrics": build.get("metrics", {}),
        }
    )
    return base


def shapes_gligen_config(overrides: dict[str, Any] | None = None) -> Any:
    """The `shapes-gligen` config: ``overrides`` of its own fields, on the default `shapes`."""
    from .engine.gligen import ShapesGligenConfig

    overrides = dict(overrides or {})
    known = {f.name for f in fields(ShapesGligenConfig) if f.init} - {"base"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"Unknown shapes-gligen settings {unknown}; known: {sorted(known)}.")
    return ShapesGligenConfig(**overrides)


def build_shapes_gligen_model(
    *, overrides: dict[str, Any] | None = None, echo: ProgressEcho | None = None
) -> BaseModel:
    """Train (or reuse) the grounded `shapes-gligen` pipeline (and `shapes` first if the cache
    lacks it) and register it."""
    return _build_and_register(
        SHAPES_GLIGEN,
        lambda: shapes_gligen_config(overrides),
        description=SHAPES_GLIGEN_DESCRIPTION,
        echo=echo,
    )


class _ProgressRecorder:
    """Writes build progress to the row at most once a second (and on every stage change)."""

    def __init__(self, name: str, echo: ProgressEcho | None = None) -> None:
        self.name = name
        self.echo = echo
        self.stage = ""
        self.last = 0.0

    def __call__(self, stage: str, step: int, total: int, metrics: dict[str, float]) -> None:
        now = time.monotonic()
        if stage == self.stage and step < total and now - self.last < PROGRESS_INTERVAL_SECONDS:
            return
        self.stage, self.last = stage, now
        services.base_model_report_progress(
            name=self.name, stage=stage, step=step, total=total, metrics=metrics
        )
        if self.echo is not None:
            self.echo(stage, step, total, metrics)


def shapes_pipeline_dir(
    *, overrides: dict[str, Any] | None = None, echo: ProgressEcho | None = None
) -> Path:
    """The ``shapes`` pipeline folder for ``overrides``, trained first if the cache lacks it.

    Registers nothing: for looking at a build (``build_shapes_model --report --no-register``).
    """
    from .engine.build_cache import cached_build

    return cached_build(shapes_config(overrides), build_cache_root(), echo)


def build_shapes_model(
    *, overrides: dict[str, Any] | None = None, echo: ProgressEcho | None = None
) -> BaseModel:
    """Train (or reuse the cached) ``shapes`` pipeline and register it; report progress."""
    existing = BaseModel.objects.filter(name=SHAPES).first()
    if existing is not None and existing.family != Family.TINY:
        raise ValueError(f"A base model named 'shapes' exists with family {existing.family}.")
    base = _build_and_register(
        SHAPES, lambda: shapes_config(overrides), description=SHAPES_DESCRIPTION, echo=echo
    )
    switch_demo_to(SHAPES)
    base.refresh_from_db()
    return base


def switch_demo_to(name: str, *, previous: str = TINY) -> int:
    """Point the demo organization (and its categories) from ``previous`` to ``name``, unless
    someone already chose something else. Returns how many organizations changed."""
    target = BaseModel.objects.filter(name=name, status=BuildStatus.READY).first()
    if target is None:
        return 0
    changed = 0
    with transaction.atomic():
        orgs = Organization.objects.select_for_update().filter(
            slug=DEMO_ORG_SLUG, default_model=previous
        )
        for org in orgs:
            org.default_model = name
            org.save(update_fields=["default_model"])
            Category.objects.filter(organization=org, base_model__name=previous).update(
                base_model=target
            )
            audit_event_record(
                org=org,
                actor=None,
                verb=AuditVerb.ORGANIZATION_DEFAULT_MODEL_CHANGED,
                obj=org,
                before={"default_model": previous},
                after={"default_model": name},
            )
            changed += 1
    return changed


def build_builtin_model(name: str, *, overrides: dict[str, Any] | None = None) -> BaseModel:
    if name in (TINY, TINY_GLIGEN):
        return build_tiny_model(grounded=name == TINY_GLIGEN)
    if name == SHAPES:
        return build_shapes_model(overrides=overrides)
    if name == SHAPES_GLIGEN:
        return build_shapes_gligen_model(overrides=overrides)
    raise ValueError(f"Unknown built-in model '{name}'; use one of {BUILTIN_NAMES}.")
