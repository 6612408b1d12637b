"""Shapes builds on a short schedule: reproducible to the bit, in diffusers format, cached."""

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
from diffusers import DDIMScheduler, StableDiffusionPipeline

from models_registry.engine.build_cache import cached_build, cached_build_path
from models_registry.engine.shapes_train import ShapesConfig, build_shapes_pipeline

SHORT = ShapesConfig(
    seed=5,
    num_images=48,
    vae_steps=3,
    vae_batch_size=8,
    unet_steps=3,
    unet_batch_size=8,
)
WEIGHT_FILES = (
    "vae/diffusion_pytorch_model.safetensors",
    "unet/diffusion_pytorch_model.safetensors",
    "text_encoder/model.safetensors",
)


def _weight_digests(folder: Path) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in WEIGHT_FILES}


@pytest.fixture(scope="module")
def short_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_shapes_pipeline(SHORT, tmp_path_factory.mktemp("short") / "shapes").path


def test_same_seed_builds_have_bit_identical_weights(short_build: Path, tmp_path: Path) -> None:
    again = build_shapes_pipeline(SHORT, tmp_path / "again").path
    assert _weight_digests(again) == _weight_digests(short_build)


def test_other_seed_builds_different_weights(short_build: Path, tmp_path: Path) -> None:
    other = build_shapes_pipeline(replace(SHORT, seed=6), tmp_path / "other").path
    unet_weights = "unet/diffusion_pytorch_model.safetensors"
    assert _weight_digests(other)[unet_weights] != _weight_digests(short_build)[unet_weights]


def test_saved_scheduler_is_ddim_trailing_v_prediction_zero_snr(short_build: Path) -> None:
    pipeline = StableDiffusionPipeline.from_pretrained(short_build)
    scheduler = pipeline.scheduler
    assert isinstance(scheduler, DDIMScheduler)
    assert scheduler.config.timestep_spacing == "trailing"
    assert scheduler.config.prediction_type == "v_prediction"
    assert scheduler.config.rescale_betas_zero_snr is True
    assert pipeline.safety_checker is None
    easel = json.loads((short_build / "easel.json").read_text())
    assert easel["native_size"] == 32 and easel["steps"] == 20 and easel["cfg"] == 5.0
    assert easel["scheduler"] == "ddim"


def test_default_pipeline_call_makes_a_32px_image(short_build: Path) -> None:
    pipeline = StableDiffusionPipeline.from_pretrained(short_build)
    pipeline.set_progress_bar_config(disable=True)
    image = pipeline(
        "a red apple on a white background", num_inference_steps=2, output_type="np"
    ).images[0]
    assert image.shape == (32, 32, 3)


def test_cached_build_reuses_a_finished_build_and_rebuilds_on_config_change(tmp_path: Path) -> None:
    calls: list[str] = []

    def progress(stage: str, step: int, total: int, metrics: dict[str, float]) -> None:
        calls.append(stage)

    first = cached_build(SHORT, tmp_path, progress)
    assert first == cached_build_path(SHORT, tmp_path)
    assert first.name.startswith("shapes-") and len(first.name) == len("shapes-") + 16
    assert "unet" in calls
    calls.clear()
    assert cached_build(SHORT, tmp_path, progress) == first
    assert calls == []  # reused, not rebuilt
    changed = replace(SHORT, vae_steps=4)
    assert cached_build_path(changed, tmp_path) != first


def test_a_failing_build_leaves_nothing_behind(tmp_path: Path) -> None:
    def cancel(stage: str, step: int, total: int, metrics: dict[str, float]) -> None:
        if stage == "unet":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_shapes_pipeline(SHORT, tmp_path / "shapes", cancel)
    assert list(tmp_path.iterdir()) == []
