"""The DreamBooth engine on the tiny pipeline (CPU, 32×32, one thread, a few steps each): settings
are checked up front; a LoRA run writes diffusers' file that `use_adapter` loads into the same
images the trainer rendered, while switching the adapter off gives the base pixels back; text
encoder LoRA loads too; gradient checkpointing trains the same weights; a canceled run resumes
from its checkpoint where it stopped; class images are drawn once; validation images land at
their steps; full mode writes a pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from generation.engine.adapters import use_adapter
from training.engine.class_images import ensure_class_images
from training.engine.dreambooth import (
    DreamBoothConfig,
    Progress,
    TrainingCanceled,
    train_dreambooth,
)
from training.engine.images import training_pixels

RESOLUTION = 32
INSTANCE_PROMPT = "a sks star on a white background"
CLASS_PROMPT = "a box on a white background"


@pytest.fixture(autouse=True)
def _one_thread():  # type: ignore[no-untyped-def]
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _stars(count: int = 2) -> list[Image.Image]:
    images = []
    for index in range(count):
        image = Image.new("RGB", (48, 40), (244, 244, 241))
        offset = 4 * index
        ImageDraw.Draw(image).regular_polygon((24 + offset, 20, 12), n_sides=5, fill=(30, 200, 200))
        images.append(image)
    return images


def _config(**overrides: object) -> DreamBoothConfig:
    settings: dict[str, object] = {
        "instance_prompt": INSTANCE_PROMPT,
        "class_prompt": CLASS_PROMPT,
        "resolution": RESOLUTION,
        "max_steps": 3,
        "learning_rate": 1e-3,
        "rank": 4,
        "sample_steps": 2,
        "validation_seeds": (),
        **overrides,
    }
    return DreamBoothConfig(**settings)  # type: ignore[arg-type]


def _train(base: Path, out: Path, config: DreamBoothConfig, **kwargs: object):  # type: ignore[no-untyped-def]
    return train_dreambooth(
        base_model_dir=base, instance_images=_stars(), config=config, output_dir=out, **kwargs
    )


def _base_pipe(base: Path):  # type: ignore[no-untyped-def]
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(base)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _render(pipe, prompt: str, seeds: tuple[int, ...] = (0, 1)) -> np.ndarray:  # type: ignore[no-untyped-def]
    """As the trainer renders validation images: one batch of the seeds, 2 steps, guidance 5."""
    images = pipe(
        prompt=[prompt] * len(seeds),
        generator=[torch.Generator("cpu").manual_seed(s) for s in seeds],
        num_inference_steps=2,
        guidance_scale=5.0,
        height=RESOLUTION,
        width=RESOLUTION,
    ).images
    return np.stack([np.asarray(image) for image in images])


def _pngs(paths: list[Path]) -> np.ndarray:
    return np.stack([np.asarray(Image.open(path).convert("RGB")) for path in paths])


def test_invalid_settings_name_every_bad_field():
    with pytest.raises(ValueError) as raised:
        DreamBoothConfig(
            instance_prompt="a photo of a dog",
            class_prompt="a photo of a sks dog",
            mode="dora",
            resolution=30,
            max_steps=0,
            lr_scheduler="exponential",
            mixed_precision="fp8",
            batch_size=0,
            with_prior_preservation=True,
            num_class_images=0,
        )
    message = str(raised.value)
    for name in (
        "instance_prompt must contain the rare token 'sks'",
        "class_prompt must name the class without the rare token",
        "mode",
        "resolution",
        "max_steps",
        "lr_scheduler",
        "mixed_precision",
        "batch_size",
        "num_class_images",
    ):
        assert name in message
    with pytest.raises(ValueError, match="class_prompt is required with with_prior_preservation"):
        DreamBoothConfig(instance_prompt=INSTANCE_PROMPT, with_prior_preservation=True)
    assert _config().prompts_to_validate == (INSTANCE_PROMPT, CLASS_PROMPT)


def test_mixed_precision_on_cpu_is_refused_before_anything_loads(tmp_path):
    with pytest.raises(ValueError, match="needs a CUDA device.*mixed_precision='no'"):
        _train(tmp_path / "no-model", tmp_path / "out", _config(mixed_precision="fp16"))


def test_training_images_are_upright_rgb_squares_in_minus_one_to_one():
    wide = Image.new("RGBA", (60, 30), (0, 0, 0, 0))  # transparent: becomes white
    ImageDraw.Draw(wide).rectangle((25, 5, 35, 25), fill=(255, 0, 0, 255))
    pixels = training_pixels([wide, Image.new("L", (20, 50), 0)], RESOLUTION)
    assert pixels.shape == (2, 3, RESOLUTION, RESOLUTION)
    assert pixels.min() >= -1.0 and pixels.max() <= 1.0
    assert pixels[0, :, 0, 0].tolist() == [1.0, 1.0, 1.0]  # transparency over white
    assert pixels[0, :, 16, 16].tolist() == [1.0, -1.0, -1.0]  # centred crop keeps the product
    assert pixels[1].max() == -1.0


def test_lora_weights_load_with_use_adapter_and_switching_off_gives_the_base_back(
    tiny_pipeline_dir, tmp_path
):
    pipe = _base_pipe(tiny_pipeline_dir)
    before = _render(pipe, INSTANCE_PROMPT)
    config = _config(lora_alpha=8, validation_seeds=(0, 1), validation_prompts=(INSTANCE_PROMPT,))
    result = _train(tiny_pipeline_dir, tmp_path / "job", config)

    assert result.output_path == tmp_path / "job" / "pytorch_lora_weights.safetensors"
    use_adapter(pipe, lora_path=tmp_path / "job", adapter_name="job")
    with_adapter = _render(pipe, INSTANCE_PROMPT)
    use_adapter(pipe, lora_path=None, adapter_name=None)
    after = _render(pipe, INSTANCE_PROMPT)

    assert not np.array_equal(with_adapter, before), "the adapter changes the images"
    assert np.array_equal(after, before), "with no adapter the base pixels come back exactly"
    # The loaded adapter is the trained one (lora_alpha=2×rank survives loading too).
    assert np.array_equal(with_adapter, _pngs(result.validation_images[3]))
    assert result.metrics["trainable_parameters"] > 0
    assert [step for step, _ in result.loss_curve] == [1, 2, 3]


def test_text_encoder_lora_loads_through_load_lora_weights(tiny_pipeline_dir, tmp_path):
    from safetensors.torch import load_file

    config = _config(train_text_encoder=True, validation_seeds=(0, 1))
    result = _train(tiny_pipeline_dir, tmp_path / "job", config)
    keys = load_file(result.output_path).keys()
    assert any(key.startswith("text_encoder.") and "q_proj" in key for key in keys)
    assert any(key.startswith("unet.") and "to_q" in key for key in keys)

    pipe = _base_pipe(tiny_pipeline_dir)
    pipe.load_lora_weights(tmp_path / "job", adapter_name="job")
    assert pipe.get_list_adapters() == {"unet": ["job"], "text_encoder": ["job"]}
    validation = result.validation_images[3]
    assert np.array_equal(_render(pipe, INSTANCE_PROMPT), _pngs(validation[:2]))
    assert np.array_equal(_render(pipe, CLASS_PROMPT), _pngs(validation[2:]))


def test_a_canceled_run_resumes_from_its_checkpoint_and_continues_the_step_count(
    tiny_pipeline_dir, tmp_path
):
    config = _config(max_steps=4, checkpoint_every=2, train_text_encoder=True)
    first: list[Progress] = []
    with pytest.raises(TrainingCanceled) as canceled:
        _train(
            tiny_pipeline_dir,
            tmp_path,
            config,
            on_progress=first.append,
            should_stop=lambda: len(first) >= 3,
        )
    assert canceled.value.step == 3
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-2"]
    assert not (tmp_path / "pytorch_lora_weights.safetensors").exists()

    second: list[Progress] = []
    result = _train(tiny_pipeline_dir, tmp_path, config, on_progress=second.append)
    assert result.resumed_from_step == 2
    assert result.steps == 4
    assert [p.step for p in second] == [3, 4]
    assert [step for step, _ in result.loss_curve] == [1, 2, 3, 4]
    # Weights, optimizer and random state came back: step 3 repeats the canceled run's step 3.
    assert [loss for _, loss in result.loss_curve[:3]] == [p.loss for p in first]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-2", "step-4"]
    state = json.loads((tmp_path / "checkpoints" / "step-4" / "state.json").read_text())
    assert state["step"] == 4 and len(state["loss_curve"]) == 4


def test_gradient_checkpointing_trains_the_same_weights(tiny_pipeline_dir, tmp_path):
    from safetensors.torch import load_file

    config = _config(max_steps=2, train_text_encoder=True)
    plain = _train(tiny_pipeline_dir, tmp_path / "plain", config)
    checkpointed = _train(
        tiny_pipeline_dir,
        tmp_path / "ckpt",
        _config(**{**config.__dict__, "gradient_checkpointing": True}),
    )
    assert [loss for _, loss in checkpointed.loss_curve] == pytest.approx(
        [loss for _, loss in plain.loss_curve], rel=1e-5
    )
    weights, expected = load_file(checkpointed.output_path), load_file(plain.output_path)
    assert weights.keys() == expected.keys()
    assert all(torch.allclose(weights[k], expected[k], atol=1e-6) for k in expected)


def test_cancel_stops_within_one_step(tiny_pipeline_dir, tmp_path):
    seen: list[Progress] = []
    with pytest.raises(TrainingCanceled, match="after step 1") as canceled:
        _train(
            tiny_pipeline_dir,
            tmp_path,
            _config(max_steps=50),
            on_progress=seen.append,
            should_stop=lambda: bool(seen),
        )
    assert canceled.value.step == 1
    assert [p.step for p in seen] == [1]
    assert seen[0].total == 50 and seen[0].lr == pytest.approx(1e-3)
    assert not (tmp_path / "pytorch_lora_weights.safetensors").exists()


def test_class_images_are_generated_once_per_base_prompt_count_resolution_and_seed(
    tiny_pipeline_dir, tmp_path
):
    cache = tmp_path / "class-cache"
    config = _config(max_steps=1, with_prior_preservation=True, num_class_images=3)
    first = _train(tiny_pipeline_dir, tmp_path / "a", config, class_cache_dir=cache)
    assert first.metrics["class_images_generated"] == 3
    assert first.metrics["final_prior_loss"] > 0
    (folder,) = [p for p in cache.iterdir() if not p.name.startswith(".")]
    written = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert sorted(written) == ["0000.png", "0001.png", "0002.png", "manifest.json"]

    second = _train(tiny_pipeline_dir, tmp_path / "b", config, class_cache_dir=cache)
    assert second.metrics["class_images_generated"] == 0
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == written

    loads: list[int] = []
    cached = ensure_class_images(
        base_model_dir=tiny_pipeline_dir,
        class_prompt=CLASS_PROMPT,
        count=3,
        resolution=RESOLUTION,
        seed=0,
        cache_dir=cache,
        num_inference_steps=2,
        guidance_scale=5.0,
        make_pipeline=lambda: loads.append(1),
    )
    assert cached.generated == 0 and not loads, "a cached set loads no pipeline"
    other_seed = ensure_class_images(
        base_model_dir=tiny_pipeline_dir,
        class_prompt=CLASS_PROMPT,
        count=2,
        resolution=RESOLUTION,
        seed=1,
        cache_dir=cache,
        num_inference_steps=2,
        guidance_scale=5.0,
        make_pipeline=lambda: _base_pipe(tiny_pipeline_dir),
    )
    assert other_seed.generated == 2 and other_seed.folder != folder


def test_validation_images_are_rendered_every_n_steps_and_at_the_end(tiny_pipeline_dir, tmp_path):
    config = _config(max_steps=3, validation_every=2, validation_seeds=(5, 9))
    result = _train(tiny_pipeline_dir, tmp_path, config)
    assert sorted(result.validation_images) == [2, 3]
    for step, paths in result.validation_images.items():
        assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
            f"validation/step-{step}/{name}.png" for name in ("0-5", "0-9", "1-5", "1-9")
        ]
        assert all(Image.open(p).size == (RESOLUTION, RESOLUTION) for p in paths)
    assert not np.array_equal(
        _pngs(result.validation_images[2]), _pngs(result.validation_images[3])
    )


def test_full_mode_writes_a_pipeline_folder_that_loads(tiny_pipeline_dir, tmp_path):
    from diffusers import StableDiffusionPipeline

    result = _train(tiny_pipeline_dir, tmp_path, _config(mode="full", max_steps=2))
    folder = tmp_path / "pipeline"
    assert result.output_path == folder and result.mode == "full"
    tuned = StableDiffusionPipeline.from_pretrained(folder)
    tuned.set_progress_bar_config(disable=True)
    base = _base_pipe(tiny_pipeline_dir)
    vae_file = "vae/diffusion_pytorch_model.safetensors"
    assert (folder / vae_file).read_bytes() == (tiny_pipeline_dir / vae_file).read_bytes()
    changed = [
        name
        for name, weight in tuned.unet.state_dict().items()
        if not torch.equal(weight, base.unet.state_dict()[name])
    ]
    assert changed, "the UNet was fine-tuned"
    assert not np.array_equal(_render(tuned, INSTANCE_PROMPT), _render(base, INSTANCE_PROMPT))
    assert result.metrics["trainable_parameters"] == sum(p.numel() for p in base.unet.parameters())
