"""Train the `shapes` base model offline: a small Stable Diffusion pipeline that follows prompts.

No real weights can be downloaded here and random weights draw noise, so Easel trains its own
small model on synthetic product shots (`shapes_data`) in a few minutes on CPU:

1. a small `AutoencoderKL` (32×32 images → 8×8×4 latents) learns to reconstruct the shots;
2. a small `UNet2DConditionModel` learns to denoise their latents (v-prediction, noise schedule
   rescaled to zero terminal SNR), conditioned on a tiny CLIP text encoder trained jointly with
   it, with caption dropout for classifier-free guidance and an EMA of both.

The result is an ordinary diffusers `StableDiffusionPipeline` folder whose saved scheduler is
DDIM with "trailing" spacing, so `StableDiffusionPipeline.from_pretrained(path)` samples well by
default (20 steps, guidance 5; see `easel.json` in the folder). Two builds with the same config
are bit-identical on the same CPU: every random draw comes from a seeded generator, the thread
count is fixed, and torch runs in deterministic mode.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from diffusers.optimization import get_cosine_schedule_with_warmup
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from models_registry.engine.atomic_dir import atomic_directory
from models_registry.engine.shapes_data import (
    BACKGROUND_NAMES,
    COLOUR_NAMES,
    IMAGE_SIZE,
    SHAPES,
    make_shapes_dataset,
    render_shots,
)
from models_registry.engine.shapes_report import judge_images
from models_registry.engine.tokenizer import (
    END_TOKEN,
    START_TOKEN,
    VOCAB_SIZE,
    write_clip_tokenizer,
)

# progress(stage, step, total_steps, metrics): stage is "data", "vae", "latents", "unet" or
# "save". It may raise (for instance on cancellation) to abort the build; nothing is written then.
ProgressCallback = Callable[[str, int, int, dict[str, float]], None]

LATENT_CHANNELS = 4
VAE_LOGVAR_BIAS = -4.0  # start the posterior nearly deterministic so colours survive encoding
# The product covers ~15 % of a shot; without extra weight the autoencoder first learns the
# backdrop and the silhouette and returns every product in one of two average hues (orange or
# blue). 5× was not enough on white backdrops (colour of reconstructions 0.62 after 400 steps);
# with one norm group, 15× reached 0.86 and 30× 0.99 after 300 steps (250 steps: 0.47).
VAE_PRODUCT_WEIGHT = 30.0
# One group (a layer norm over channels and pixels) rather than diffusers' 32: with 32 channels,
# 32 groups is a per-channel instance norm, which strips each image's colour offsets; 8 groups
# still lost the product's colour on white backdrops, where the backdrop dominates each group.
VAE_NORM_GROUPS = 1


@dataclass(frozen=True)
class ShapesConfig:
    """Everything that determines a `shapes` build; two builds with equal configs are identical."""

    seed: int = 0
    num_images: int = 4096
    # Autoencoder: 32×32 → 8×8 latents.
    vae_steps: int = 300
    vae_batch_size: int = 32
    vae_lr: float = 2e-3
    vae_l1_weight: float = 0.5
    vae_kl_weight: float = 1e-7
    # Denoiser and text encoder, trained together.
    unet_steps: int = 700
    unet_batch_size: int = 64
    unet_lr: float = 1e-3
    unet_layers_per_block: int = 1
    text_hidden_size: int = 64
    text_layers: int = 2
    max_prompt_tokens: int = 24
    caption_dropout: float = 0.15
    ema_decay: float = 0.995
    warmup_fraction: float = 0.05
    # Run-time settings that change floating-point results, hence part of the config.
    num_threads: int = 2
    # Sampling defaults written to easel.json.
    sample_steps: int = 20
    guidance_scale: float = 5.0
    guidance_rescale: float = 0.0

    kind: str = field(default="shapes", init=False)

    def __post_init__(self) -> None:
        if self.vae_steps < 1 or self.unet_steps < 1:
            raise ValueError("vae_steps and unet_steps must be at least 1")
        if self.num_images < max(self.vae_batch_size, self.unet_batch_size):
            raise ValueError("num_images must be at least the larger batch size")
        if not 0.0 <= self.caption_dropout < 1.0:
            raise ValueError("caption_dropout must lie in [0, 1)")
        if self.num_threads < 1:
            raise ValueError("num_threads must be at least 1")

    def to_json(self) -> str:
        """Canonical JSON (sorted keys): the config part of the build-cache key."""
        return json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True)
class ShapesBuildResult:
    """Where the pipeline was written, how long the build took, and its training metrics."""

    path: Path
    build_seconds: float
    metrics: dict[str, float]
    config: ShapesConfig


@contextmanager
def deterministic_cpu(num_threads: int) -> Iterator[None]:
    """Fix the thread count and turn on deterministic algorithms; restore all afterwards.

    Deterministic mode also fills every new tensor with NaN by default (to expose reads of
    uninitialised memory); that costs ~40 % of a training step here and changes no result, so
    it is switched off for the build.
    """
    import torch.utils.deterministic

    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    previous_fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.set_num_threads(num_threads)
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.utils.deterministic.fill_uninitialized_memory = previous_fill
        torch.use_deterministic_algorithms(previous_deterministic)
        torch.set_num_threads(previous_threads)


def _seeded_init(seed: int, build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """Construct a module with its random initialisation drawn from `seed` only."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _make_vae() -> AutoencoderKL:
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=VAE_NORM_GROUPS,
        sample_size=IMAGE_SIZE,
        mid_block_add_attention=True,
    )
    with torch.no_grad():
        vae.encoder.conv_out.bias[LATENT_CHANNELS:].fill_(VAE_LOGVAR_BIAS)
    return vae


def _make_text_encoder(config: ShapesConfig, tokenizer: CLIPTokenizer) -> CLIPTextModel:
    hidden = config.text_hidden_size
    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=VOCAB_SIZE,
            hidden_size=hidden,
            intermediate_size=4 * hidden,
            num_hidden_layers=config.text_layers,
            num_attention_heads=4,
            max_position_embeddings=config.max_prompt_tokens,
            projection_dim=hidden,
            bos_token_id=tokenizer.convert_tokens_to_ids(START_TOKEN),
            eos_token_id=tokenizer.convert_tokens_to_ids(END_TOKEN),
            pad_token_id=tokenizer.convert_tokens_to_ids(END_TOKEN),
        )
    )


def _make_unet(config: ShapesConfig) -> UNet2DConditionModel:
    # addition_embed_type="text" pools the prompt embedding (attention pooling) into the time
    # embedding, so every ResNet block sees the caption — not only the cross-attention block.
    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 4,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        block_out_channels=(64, 128),
        layers_per_block=config.unet_layers_per_block,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=config.text_hidden_size,
        attention_head_dim=8,
        norm_num_groups=32,
        addition_embed_type="text",
        addition_embed_type_num_heads=4,
    )


def _noise_scheduler() -> DDPMScheduler:
    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        clip_sample=False,
    )


def _report(
    progress: ProgressCallback | None, stage: str, step: int, total: int, metrics: dict[str, float]
) -> None:
    if progress is not None:
        progress(stage, step, total, metrics)


def _train_vae(
    vae: AutoencoderKL,
    images: torch.Tensor,
    config: ShapesConfig,
    generator: torch.Generator,
    progress: ProgressCallback | None,
) -> dict[str, float]:
    """Reconstruction training: weighted MSE + L1 on the decoded image, and a very light KL term.

    Saturated pixels (the product, not the white or dark set) weigh `VAE_PRODUCT_WEIGHT`×.
    """
    # channels_last convolutions are ~25 % faster on CPU for these small images.
    vae.to(memory_format=torch.channels_last)
    images = images.contiguous(memory_format=torch.channels_last)
    chroma = images.amax(dim=1, keepdim=True) - images.amin(dim=1, keepdim=True)
    pixel_weights = 1.0 + (VAE_PRODUCT_WEIGHT - 1.0) * (chroma > 0.25).float()
    optimizer = torch.optim.AdamW(
        vae.parameters(), lr=config.vae_lr, weight_decay=0.0, foreach=True
    )
    warmup = max(1, int(config.warmup_fraction * config.vae_steps))
    schedule = get_cosine_schedule_with_warmup(optimizer, warmup, config.vae_steps)
    vae.train()
    smoothed = float("nan")
    for step in range(1, config.vae_steps + 1):
        index = torch.randint(0, len(images), (config.vae_batch_size,), generator=generator)
        batch, weights = images[index], pixel_weights[index]
        posterior = vae.encode(batch).latent_dist
        reconstruction = vae.decode(posterior.sample(generator=generator)).sample
        error = reconstruction - batch
        mse = error.square().mean()
        loss = (
            (weights * error.square()).mean() / weights.mean()
            + config.vae_l1_weight * (weights * error.abs()).mean() / weights.mean()
            + config.vae_kl_weight * posterior.kl().mean()
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        smoothed = mse.item() if step == 1 else 0.95 * smoothed + 0.05 * mse.item()
        if step % 25 == 0 or step == config.vae_steps:
            _report(progress, "vae", step, config.vae_steps, {"mse": smoothed})
    vae.to(memory_format=torch.contiguous_format)
    vae.eval()
    return {"vae_mse": smoothed}


@torch.no_grad()
def vae_colour_accuracy(vae: AutoencoderKL, seed: int) -> float:
    """Colour accuracy of the autoencoder's reconstructions of fresh shots (every colour × shape ×
    background, four each), judged like generated images: the ceiling for the whole model.
    """
    asked = [
        (colour, shape, background, index)
        for colour in COLOUR_NAMES
        for shape in SHAPES
        for background in BACKGROUND_NAMES
        for index in range(4)
    ]
    shots = render_shots(
        [a[0] for a in asked], [a[1] for a in asked], [a[2] for a in asked], seed=seed
    )
    images = torch.from_numpy(shots).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    decoded = vae.decode(vae.encode(images).latent_dist.mean).sample
    pixels = decoded.clamp(-1.0, 1.0).add(1.0).mul(127.5).round().byte()
    return judge_images(pixels.permute(0, 2, 3, 1).numpy(), asked).colour_accuracy


@torch.no_grad()
def _encode_latents(vae: AutoencoderKL, images: torch.Tensor) -> torch.Tensor:
    """Posterior means of all images, in chunks."""
    return torch.cat([vae.encode(chunk).latent_dist.mean for chunk in images.split(256)])


def _ema_update(ema: list[torch.Tensor], live: list[torch.Tensor], decay: float) -> None:
    with torch.no_grad():
        torch._foreach_mul_(ema, decay)
        torch._foreach_add_(ema, live, alpha=1.0 - decay)


def _train_unet(
    unet: UNet2DConditionModel,
    text_encoder: CLIPTextModel,
    latents: torch.Tensor,
    caption_ids: torch.Tensor,
    empty_ids: torch.Tensor,
    config: ShapesConfig,
    generator: torch.Generator,
    progress: ProgressCallback | None,
) -> dict[str, float]:
    """v-prediction denoising of latents, text encoder trained jointly; leaves the EMA weights."""
    noise_scheduler = _noise_scheduler()
    modules = [unet, text_encoder]
    params = [p for module in modules for p in module.parameters()]
    optimizer = torch.optim.AdamW(params, lr=config.unet_lr, weight_decay=1e-2, foreach=True)
    warmup = max(1, int(config.warmup_fraction * config.unet_steps))
    schedule = get_cosine_schedule_with_warmup(optimizer, warmup, config.unet_steps)
    ema = [p.detach().clone() for p in params]
    for module in modules:
        module.train()
    smoothed = float("nan")
    batch_size = config.unet_batch_size
    for step in range(1, config.unet_steps + 1):
        index = torch.randint(0, len(latents), (batch_size,), generator=generator)
        clean = latents[index]
        ids = caption_ids[index]
        dropped = torch.rand(batch_size, generator=generator) < config.caption_dropout
        ids = torch.where(dropped[:, None], empty_ids[None, :], ids)
        noise = torch.randn(clean.shape, generator=generator)
        timesteps = torch.randint(
            0, noise_scheduler.config.num_train_timesteps, (batch_size,), generator=generator
        )
        noisy = noise_scheduler.add_noise(clean, noise, timesteps)
        target = noise_scheduler.get_velocity(clean, noise, timesteps)
        prompt_embeds = text_encoder(ids)[0]
        prediction = unet(noisy, timesteps, encoder_hidden_states=prompt_embeds).sample
        loss = F.mse_loss(prediction, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        optimizer.step()
        schedule.step()
        # The usual EMA warm-up: average over a short window first, then `ema_decay`.
        _ema_update(
            ema, [p.detach() for p in params], min(config.ema_decay, (1 + step) / (10 + step))
        )
        smoothed = loss.item() if step == 1 else 0.97 * smoothed + 0.03 * loss.item()
        if step % 25 == 0 or step == config.unet_steps:
            _report(progress, "unet", step, config.unet_steps, {"loss": smoothed})
    with torch.no_grad():
        for param, averaged in zip(params, ema, strict=True):
            param.copy_(averaged)
    for module in modules:
        module.eval()
    return {"unet_loss": smoothed}


def sampling_scheduler() -> DDIMScheduler:
    """The scheduler saved with the pipeline: DDIM, trailing spacing, v-prediction, zero SNR."""
    return DDIMScheduler.from_config(
        _noise_scheduler().config,
        timestep_spacing="trailing",
        set_alpha_to_one=False,
        steps_offset=1,  # ignored by "trailing" spacing; 1 keeps diffusers' legacy check quiet
    )


def _tokenize(tokenizer: CLIPTokenizer, captions: list[str]) -> torch.Tensor:
    return tokenizer(
        captions,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids


def build_shapes_pipeline(
    config: ShapesConfig,
    out_dir: Path,
    progress: ProgressCallback | None = None,
    *,
    replace: bool = True,
) -> ShapesBuildResult:
    """Train the `shapes` model and write it to `out_dir` as a diffusers pipeline folder.

    The folder is written atomically; an existing `out_dir` is replaced, or with `replace=False`
    kept (the new build is discarded). Besides the pipeline, the folder holds `easel.json`
    (family, native size, sampling defaults) and `build.json` (config, timings, metrics,
    library versions).
    """
    out_dir = Path(out_dir)
    started = time.perf_counter()
    metrics: dict[str, float] = {}
    with (
        atomic_directory(out_dir, replace=replace) as staging,
        deterministic_cpu(config.num_threads),
    ):
        _report(progress, "data", 0, 1, {})
        dataset = make_shapes_dataset(config.num_images, seed=config.seed)
        images = torch.from_numpy(dataset.images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        tokenizer = CLIPTokenizer.from_pretrained(
            write_clip_tokenizer(staging / "tokenizer", config.max_prompt_tokens)
        )
        caption_ids = _tokenize(tokenizer, dataset.captions)
        empty_ids = _tokenize(tokenizer, [""])[0]
        _report(progress, "data", 1, 1, {"images": float(len(dataset))})
        metrics["data_seconds"] = time.perf_counter() - started

        generator = torch.Generator().manual_seed(config.seed)
        stage_start = time.perf_counter()
        vae = _seeded_init(config.seed + 1, _make_vae)
        metrics.update(_train_vae(vae, images, config, generator, progress))
        metrics["vae_seconds"] = time.perf_counter() - stage_start
        # A cheap check of the stage that limits colour fidelity (recorded, ~0.9 or better).
        metrics["vae_colour_accuracy"] = vae_colour_accuracy(vae, seed=config.seed + 7919)
        _report(
            progress,
            "vae",
            config.vae_steps,
            config.vae_steps,
            {"colour_accuracy": metrics["vae_colour_accuracy"]},
        )

        latents = _encode_latents(vae, images)
        scaling_factor = float(1.0 / latents.std())
        vae.register_to_config(scaling_factor=scaling_factor)
        latents = latents * scaling_factor
        metrics["latent_scaling_factor"] = scaling_factor
        _report(progress, "latents", 1, 1, {"scaling_factor": scaling_factor})

        stage_start = time.perf_counter()
        text_encoder = _seeded_init(config.seed + 2, lambda: _make_text_encoder(config, tokenizer))
        unet = _seeded_init(config.seed + 3, lambda: _make_unet(config))
        metrics.update(
            _train_unet(
                unet, text_encoder, latents, caption_ids, empty_ids, config, generator, progress
            )
        )
        metrics["unet_seconds"] = time.perf_counter() - stage_start

        _report(progress, "save", 0, 1, {})
        pipeline = StableDiffusionPipeline(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            scheduler=sampling_scheduler(),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        pipeline.save_pretrained(staging, safe_serialization=True)
        build_seconds = time.perf_counter() - started
        easel = {
            "base_model": "shapes",
            "family": "tiny",
            "native_size": IMAGE_SIZE,
            "steps": config.sample_steps,
            "cfg": config.guidance_scale,
            "guidance_rescale": config.guidance_rescale,
            "scheduler": "ddim",
        }
        (staging / "easel.json").write_text(json.dumps(easel, indent=2) + "\n", encoding="utf-8")
        build = {
            "config": asdict(config),
            "build_seconds": build_seconds,
            "metrics": metrics,
            "versions": _library_versions(),
        }
        (staging / "build.json").write_text(json.dumps(build, indent=2) + "\n", encoding="utf-8")
        _report(progress, "save", 1, 1, {"build_seconds": build_seconds})
    return ShapesBuildResult(
        path=out_dir, build_seconds=build_seconds, metrics=metrics, config=config
    )


def _library_versions() -> dict[str, str]:
    import diffusers
    import transformers

    return {
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
    }


def read_build_info(path: Path) -> dict[str, Any]:
    """The `build.json` a build wrote (config, build_seconds, metrics, versions)."""
    info_path = Path(path) / "build.json"
    if not info_path.is_file():
        raise FileNotFoundError(f"{info_path} not found: {path} is not a finished shapes build")
    return json.loads(info_path.read_text(encoding="utf-8"))
