"""The random-weight `tiny` pipeline: loads offline, draws 64×64 images fast and reproducibly."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline

from models_registry.engine.tiny import build_tiny_pipeline


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir: Path) -> StableDiffusionPipeline:
    pipe = StableDiffusionPipeline.from_pretrained(tiny_model_dir)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _generate(pipe: StableDiffusionPipeline, seed: int) -> np.ndarray:
    return pipe(
        "a red apple on a white background",
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
    ).images[0]


def test_folder_is_diffusers_format_with_safetensors_only(tiny_model_dir: Path) -> None:
    assert (tiny_model_dir / "model_index.json").is_file()
    for part in ("unet", "vae", "text_encoder"):
        assert list((tiny_model_dir / part).glob("*.safetensors")), part
    assert not list(tiny_model_dir.rglob("*.bin"))
    assert json.loads((tiny_model_dir / "easel.json").read_text())["native_size"] == 64
    assert not list(tiny_model_dir.parent.glob(".*partial"))


def test_makes_a_64px_image_in_well_under_a_second(pipeline: StableDiffusionPipeline) -> None:
    _generate(pipeline, seed=0)  # first call pays one-off initialisation
    started = time.perf_counter()
    image = _generate(pipeline, seed=1)
    elapsed = time.perf_counter() - started
    assert image.shape == (64, 64, 3)
    assert np.isfinite(image).all()
    assert elapsed < 1.0


def test_same_seed_gives_bit_identical_image(pipeline: StableDiffusionPipeline) -> None:
    first, second = _generate(pipeline, seed=7), _generate(pipeline, seed=7)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, _generate(pipeline, seed=8))


def test_same_build_seed_gives_identical_weights(tmp_path: Path, tiny_model_dir: Path) -> None:
    rebuilt = build_tiny_pipeline(tmp_path / "again", seed=0)
    other = build_tiny_pipeline(tmp_path / "other", seed=1)
    weights = "unet/diffusion_pytorch_model.safetensors"
    assert (rebuilt / weights).read_bytes() == (tiny_model_dir / weights).read_bytes()
    assert (other / weights).read_bytes() != (tiny_model_dir / weights).read_bytes()
