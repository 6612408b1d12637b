"""The random-weight `tiny` pipeline: loads offline, draws 64×64 images fast and reproducibly, and
a seed draws the pinned weights and pixels (diffusers' ``expected_slice``)."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from safetensors.numpy import load_file

from models_registry.engine.tiny import build_tiny_pipeline

# Measured with torch 2.13 and diffusers 0.42 on CPU (fp32, one or two threads). An upgrade that
# changes what build seed 0 draws, or what the pipeline makes of it, fails here first; after one
# that does so on purpose, pin the values the failure prints.
EXPECTED_CONV_IN = np.array([-0.0012478, 0.0894073, -0.1371742, -0.1226565, -0.0641924, 0.0446929])
# Bottom-right 3×3 pixels, blue channel (0..1), of "a red apple on a white background" at seed 0.
EXPECTED_SLICE = np.array(
    [0.599569, 0.589328, 0.620334, 0.632551, 0.565590, 0.559148, 0.611232, 0.541594, 0.489070]
)


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


def test_build_seed_0_draws_the_pinned_weights(tiny_model_dir: Path) -> None:
    weights = load_file(tiny_model_dir / "unet/diffusion_pytorch_model.safetensors")
    got = weights["conv_in.weight"].ravel()[:6]
    assert np.abs(got - EXPECTED_CONV_IN).max() < 1e-6, f"weights moved; now {got.tolist()}"


def test_seed_0_image_has_the_pinned_pixels(pipeline: StableDiffusionPipeline) -> None:
    got = _generate(pipeline, seed=0)[-3:, -3:, -1].ravel()
    assert np.abs(got - EXPECTED_SLICE).max() < 1e-4, f"pixels moved; now {got.tolist()}"
