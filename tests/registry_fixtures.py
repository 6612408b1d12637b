"""Pytest plugin with model-registry fixtures other apps' tests use too.

- ``tiny_pipeline_dir`` (session): the built-in `tiny` pipeline, built once into the build cache
  (``EASEL_BUILD_CACHE_DIR``, by default ``~/.cache/easel/models/``) and reused across runs.
- ``tiny_base_model`` (db): the `tiny` BaseModel, uploaded through the configured storage, ready
  and materializable.
- ``tiny_gligen_pipeline_dir`` (session) / ``tiny_gligen_base_model`` (db): its GLIGEN variant.
- ``default_shapes_build`` / ``default_shapes_gligen_build`` (session): the default `shapes` and
  `shapes-gligen` builds in ~/.cache/easel/models (built once per config and engine source).
- ``lora_factory``: ``lora_factory(seed=1, rank=4)`` writes a random LoRA for the tiny UNet
  (peft, seeded, non-zero so it changes images) and returns the ``.safetensors`` path.

torch/diffusers are imported inside the fixtures, so collecting tests never loads them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_pipeline_dir() -> Path:
    from models_registry.builtin import ensure_tiny_pipeline

    return ensure_tiny_pipeline()


@pytest.fixture(scope="session")
def tiny_gligen_pipeline_dir() -> Path:
    from models_registry.builtin import ensure_tiny_pipeline

    return ensure_tiny_pipeline(grounded=True)


@pytest.fixture(scope="session")
def default_shapes_build() -> Path:
    """The default config's build under ~/.cache/easel/models, keyed by config + engine source:
    only the first run after a change to either pays the build; every test shares it."""
    from models_registry.engine.build_cache import cached_build, default_cache_root
    from models_registry.engine.shapes_train import ShapesConfig

    return cached_build(ShapesConfig(), default_cache_root())


@pytest.fixture(scope="session")
def default_shapes_gligen_build(default_shapes_build) -> Path:  # type: ignore[no-untyped-def]
    """The grounded `shapes-gligen` build, cached the same way (trained from the shapes build)."""
    from models_registry.engine.build_cache import cached_build, default_cache_root
    from models_registry.engine.gligen import ShapesGligenConfig

    return cached_build(ShapesGligenConfig(), default_cache_root())


@pytest.fixture
def tiny_base_model(db, tiny_pipeline_dir):  # type: ignore[no-untyped-def]
    from models_registry.builtin import build_tiny_model
    from models_registry.models import BaseModel, BuildStatus

    existing = BaseModel.objects.filter(name="tiny", status=BuildStatus.READY).first()
    return existing or build_tiny_model()


@pytest.fixture
def tiny_gligen_base_model(db, tiny_gligen_pipeline_dir):  # type: ignore[no-untyped-def]
    """The `tiny-gligen` BaseModel: the tiny weights plus random GLIGEN layers (takes a layout)."""
    from models_registry.builtin import build_tiny_model
    from models_registry.models import BaseModel, BuildStatus

    existing = BaseModel.objects.filter(name="tiny-gligen", status=BuildStatus.READY).first()
    return existing or build_tiny_model(grounded=True)


@pytest.fixture
def shapes_base_model(db):  # type: ignore[no-untyped-def]
    """The trained ``shapes`` model, registered and ready (built once per machine, then cached)."""
    from models_registry.builtin import build_shapes_model
    from models_registry.models import BaseModel, BuildStatus

    existing = BaseModel.objects.filter(name="shapes", status=BuildStatus.READY).first()
    return existing or build_shapes_model()


def make_tiny_lora(base_dir: Path, out_dir: Path, *, seed: int = 1, rank: int = 4) -> Path:
    """Random LoRA weights for the tiny UNet's attention projections, saved diffusers-style."""
    from models_registry.engine.tiny import make_random_lora

    return make_random_lora(base_dir, out_dir, seed=seed, rank=rank)


@pytest.fixture
def lora_factory(tiny_pipeline_dir, tmp_path_factory) -> Callable[..., Path]:  # type: ignore[no-untyped-def]
    def build(*, seed: int = 1, rank: int = 4) -> Path:
        out = tmp_path_factory.mktemp(f"lora-seed{seed}-r{rank}")
        return make_tiny_lora(tiny_pipeline_dir, out, seed=seed, rank=rank)

    return build
