"""Registry test helpers: fake LoRA files (valid safetensors headers, no torch), versions, and
the default ``shapes`` build (built once per machine, ~10 minutes, then cached)."""

from __future__ import annotations

import json
import struct
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from models_registry import services
from models_registry.models import BaseModel, Category, ModelVersion
from tenants.principal import Principal

# A shapes build in seconds: exercises every stage, learns nothing.
QUICK_SHAPES = {
    "num_images": 64,
    "vae_steps": 2,
    "unet_steps": 3,
    "vae_batch_size": 8,
    "unet_batch_size": 8,
    "num_threads": 1,
}


def write_fake_lora(path: Path, *, marker: str | None = None) -> Path:
    """A minimal safetensors file with one LoRA-named tensor; unique content per call."""
    marker = marker or uuid.uuid4().hex
    data = marker.encode()[:16].ljust(16, b"\0")
    header = {
        "unet.down_blocks.0.attn.to_q.lora.down.weight": {
            "dtype": "F32",
            "shape": [4],
            "data_offsets": [0, len(data)],
        }
    }
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


@pytest.fixture
def category_factory(tiny_base_model) -> Callable[..., Category]:  # type: ignore[no-untyped-def]
    def build(actor: Principal, slug: str = "produce", **fields: object) -> Category:
        fields.setdefault("base_model", tiny_base_model)
        return services.category_create(actor=actor, slug=slug, name=slug.title(), **fields)

    return build


@pytest.fixture
def version_factory(tiny_base_model, tmp_path) -> Callable[..., ModelVersion]:  # type: ignore[no-untyped-def]
    def build(
        actor: Principal, category: Category, *, base: BaseModel | None = None, **kw: object
    ) -> ModelVersion:
        weights = write_fake_lora(tmp_path / f"{uuid.uuid4().hex}.safetensors")
        return services.model_version_register(
            actor=actor,
            category=category,
            base=base or tiny_base_model,
            kind="lora",
            source_path=weights,
            **kw,
        )

    return build
