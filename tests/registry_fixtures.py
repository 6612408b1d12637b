"""Pytest plugin with model-registry fixtures other apps' tests use too.

- ``tiny_pipeline_dir`` (session): the built-in `tiny` pipeline, built once into the build cache
  (``EASEL_BUILD_CACHE_DIR``, by default ``~/.cache/easel/models/``) and reused across runs.
- ``tiny_base_model`` (db): the `tiny` BaseModel, uploaded through the configured storage, ready
  and materializable.
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


@pytest.fixture
def tiny_base_model(db, tiny_pipeline_dir):  # type: ignore[no-untyped-def]
    from models_registry.builtin import build_tiny_model
    from models_registry.models import BaseModel, BuildStatus

    existing = BaseModel.objects.filter(name="tiny", status=BuildStatus.READY).first()
    return existing or build_tiny_model()


@pytest.fixture
def shapes_base_model(db):  # type: ignore[no-untyped-def]
    """The trained ``shapes`` model, registered and ready (built once per machine, then cached)."""
    from models_registry.builtin import build_shapes_model
    from models_registry.models import BaseModel, BuildStatus

    existing = BaseModel.objects.filter(name="shapes", status=BuildStatus.READY).first()
    return existing or build_shapes_model()


def make_tiny_lora(base_dir: Path, out_dir: Path, *, seed: int = 1, rank: int = 4) -> Path:
    """Random LoRA weights for the tiny UNet's attention projections, saved diffusers-style."""
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig, get_peft_model_state_dict

    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(base_dir / "unet"))
    config = LoraConfig(
        r=rank,
        lora_alpha=rank,
        init_lora_weights=False,  # random A and B: the adapter visibly changes the output
        target_modules=["to_q", "to_k", "to_v", "to_out.0"],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet.add_adapter(config)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    out_dir.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(
        out_dir, unet_lora_layers=layers, safe_serialization=True
    )
    return out_dir / "pytorch_lora_weights.safetensors"


@pytest.fixture
def lora_factory(tiny_pipeline_dir, tmp_path_factory) -> Callable[..., Path]:  # type: ignore[no-untyped-def]
    def build(*, seed: int = 1, rank: int = 4) -> Path:
        out = tmp_path_factory.mktemp(f"lora-seed{seed}-r{rank}")
        return make_tiny_lora(tiny_pipeline_dir, out, seed=seed, rank=rank)

    return build
