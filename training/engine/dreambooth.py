"""DreamBooth and DreamBooth-LoRA: teach a Stable Diffusion pipeline folder one subject from a
few photos, bound to a rare token ("a sks star on a white background"). Django-free.

It follows diffusers' `examples/dreambooth/train_dreambooth_lora.py` (and `train_dreambooth.py`
for `mode="full"`), as one function instead of a script:

1. load the pipeline folder's tokenizer, CLIP text encoder, VAE, UNet and noise schedule, and
   freeze all of them;
2. with prior preservation, draw the class images from the base model (cached, see
   `class_images`) — the DreamBooth paper's guard against the class forgetting what it was;
3. make the trained part trainable: peft LoRA on the UNet's attention projections (and on the
   text encoder's with `train_text_encoder`), or the whole UNet in full mode;
4. each step: sample latents of instance (and class) images, add noise at random timesteps,
   and regress the UNet's prediction on the noise — or on the velocity, when the scheduler's
   `prediction_type` is "v_prediction" — with the class half's loss weighted by
   `prior_loss_weight`; AdamW, gradient clipping, diffusers' learning-rate schedules;
5. checkpoint, render validation images, and finally write the adapter (diffusers' LoRA file,
   loadable with `pipe.load_lora_weights(output_dir)`) or the fine-tuned pipeline folder.

A run that finds a checkpoint in `output_dir/checkpoints/` resumes from the latest one.
`should_stop()` is asked before every step and `on_progress` told after every step, as the
generation engine does between denoising steps.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from .checkpoints import latest_checkpoint, load_checkpoint, save_checkpoint
from .class_images import ensure_class_images
from .images import training_pixels

MODES = ("lora", "full")
LR_SCHEDULERS = ("constant", "cosine", "linear")
MIXED_PRECISIONS = ("no", "fp16", "bf16")
UNET_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_ENCODER_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
PIPELINE_DIR = "pipeline"
CHECKPOINTS_DIR = "checkpoints"
VALIDATION_DIR = "validation"
# diffusers' example defaults for AdamW.
ADAM_BETAS = (0.9, 0.999)
ADAM_WEIGHT_DECAY = 1e-2
ADAM_EPSILON = 1e-8


@dataclass(frozen=True)
class DreamBoothConfig:
    """What to train and how. Invalid settings raise one ValueError naming every bad field."""

    instance_prompt: str  # must contain `rare_token`: "a sks star on a white background"
    class_prompt: str = ""  # the subject's class without the token: "a box on a white background"
    rare_token: str = "sks"  # noqa: S105 (a word for the subject, not a password)
    mode: str = "lora"  # "lora" | "full"
    resolution: int = 512
    max_steps: int = 400
    learning_rate: float = 1e-4
    lr_scheduler: str = "constant"  # "constant" | "cosine" | "linear"
    lr_warmup_steps: int = 0
    rank: int = 4
    lora_alpha: float | None = None  # None: equal to rank (LoRA scale 1)
    train_text_encoder: bool = False  # LoRA mode: LoRA on CLIP too; full mode: CLIP fine-tuned
    batch_size: int = 1  # instance images per step (and as many class images)
    gradient_accumulation_steps: int = 1
    mixed_precision: str = "no"  # "no" | "fp16" | "bf16"; fp16/bf16 need CUDA
    gradient_checkpointing: bool = False  # saves GPU memory for ~30 % more compute
    seed: int = 0
    with_prior_preservation: bool = False
    prior_loss_weight: float = 1.0
    num_class_images: int = 100
    checkpoint_every: int = 0  # steps; 0: no checkpoints
    checkpoints_total_limit: int | None = None  # keep the newest N; None keeps all
    validation_every: int = 0  # steps; 0: only at the end
    validation_prompts: tuple[str, ...] | None = None  # None: instance prompt and class prompt
    validation_seeds: tuple[int, ...] = (0, 1)  # (): no validation images
    max_grad_norm: float = 1.0
    # Sampling settings of validation and class images.
    sample_steps: int = 25
    guidance_scale: float = 5.0
    # Class images may be drawn at a lower guidance than the validation images: the class prompt
    # is trained towards them unguided, and guided sampling then amplifies what it learned. In
    # scripts/dreambooth_shapes_demo.py (sampled at guidance 5), class images at guidance 5 kept
    # the class prompt's images as they were for 8/16 seeds, at 1.5 for 16/16. None: as
    # `guidance_scale`.
    class_guidance_scale: float | None = None

    def __post_init__(self) -> None:
        problems = _config_problems(self)
        if problems:
            raise ValueError("Invalid DreamBooth settings: " + "; ".join(problems) + ".")

    @property
    def prompts_to_validate(self) -> tuple[str, ...]:
        if self.validation_prompts is not None:
            return self.validation_prompts
        return tuple(p for p in (self.instance_prompt, self.class_prompt) if p)

    @property
    def lora_scale_alpha(self) -> float:
        return float(self.rank if self.lora_alpha is None else self.lora_alpha)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _config_problems(c: DreamBoothConfig) -> list[str]:
    problems = []

    def need(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    token_ok = isinstance(c.rare_token, str) and c.rare_token.split() == [c.rare_token]
    need(token_ok, f"rare_token must be one word without spaces, not {c.rare_token!r}")
    if token_ok:
        word = re.compile(rf"(?<!\w){re.escape(c.rare_token)}(?!\w)", re.IGNORECASE)
        need(
            bool(word.search(c.instance_prompt)),
            f"instance_prompt must contain the rare token {c.rare_token!r} as a word "
            f"(e.g. 'a {c.rare_token} dog'), not {c.instance_prompt!r}",
        )
        need(
            not word.search(c.class_prompt),
            f"class_prompt must name the class without the rare token {c.rare_token!r}",
        )
    need(c.mode in MODES, f"mode must be one of {MODES}, not {c.mode!r}")
    need(
        _is_int(c.resolution) and c.resolution >= 8 and c.resolution % 8 == 0,
        f"resolution must be a positive multiple of 8, not {c.resolution!r}",
    )
    need(_is_int(c.max_steps) and c.max_steps >= 1, f"max_steps must be >= 1, not {c.max_steps!r}")
    need(
        isinstance(c.learning_rate, int | float)
        and math.isfinite(c.learning_rate)
        and c.learning_rate > 0,
        f"learning_rate must be a positive number, not {c.learning_rate!r}",
    )
    need(
        c.lr_scheduler in LR_SCHEDULERS,
        f"lr_scheduler must be one of {LR_SCHEDULERS}, not {c.lr_scheduler!r}",
    )
    need(
        _is_int(c.lr_warmup_steps) and 0 <= c.lr_warmup_steps <= c.max_steps,
        f"lr_warmup_steps must lie in [0, max_steps], not {c.lr_warmup_steps!r}",
    )
    need(_is_int(c.rank) and c.rank >= 1, f"rank must be >= 1, not {c.rank!r}")
    need(
        c.lora_alpha is None or c.lora_alpha > 0,
        f"lora_alpha must be positive (or None for rank), not {c.lora_alpha!r}",
    )
    need(
        _is_int(c.batch_size) and c.batch_size >= 1,
        f"batch_size must be >= 1, not {c.batch_size!r}",
    )
    need(
        _is_int(c.gradient_accumulation_steps) and c.gradient_accumulation_steps >= 1,
        f"gradient_accumulation_steps must be >= 1, not {c.gradient_accumulation_steps!r}",
    )
    need(
        c.mixed_precision in MIXED_PRECISIONS,
        f"mixed_precision must be one of {MIXED_PRECISIONS}, not {c.mixed_precision!r}",
    )
    need(_is_int(c.seed) and c.seed >= 0, f"seed must be a non-negative integer, not {c.seed!r}")
    need(c.prior_loss_weight >= 0, f"prior_loss_weight must be >= 0, not {c.prior_loss_weight!r}")
    if c.with_prior_preservation:
        need(
            bool(c.class_prompt.strip()),
            "class_prompt is required with with_prior_preservation (e.g. 'a photo of a dog')",
        )
        need(
            _is_int(c.num_class_images) and c.num_class_images >= 1,
            f"num_class_images must be >= 1 with prior preservation, not {c.num_class_images!r}",
        )
    need(
        _is_int(c.checkpoint_every) and c.checkpoint_every >= 0,
        f"checkpoint_every must be >= 0 (0: never), not {c.checkpoint_every!r}",
    )
    need(
        c.checkpoints_total_limit is None
        or (_is_int(c.checkpoints_total_limit) and c.checkpoints_total_limit >= 1),
        f"checkpoints_total_limit must be >= 1 or None, not {c.checkpoints_total_limit!r}",
    )
    need(
        _is_int(c.validation_every) and c.validation_every >= 0,
        f"validation_every must be >= 0 (0: only at the end), not {c.validation_every!r}",
    )
    need(
        c.validation_prompts is None
        or (
            isinstance(c.validation_prompts, tuple)
            and all(isinstance(p, str) and p.strip() for p in c.validation_prompts)
        ),
        "validation_prompts must be a tuple of non-empty prompts (or None for the defaults)",
    )
    need(
        isinstance(c.validation_seeds, tuple) and all(_is_int(s) for s in c.validation_seeds),
        f"validation_seeds must be a tuple of integers, not {c.validation_seeds!r}",
    )
    need(c.max_grad_norm > 0, f"max_grad_norm must be positive, not {c.max_grad_norm!r}")
    need(
        _is_int(c.sample_steps) and c.sample_steps >= 1,
        f"sample_steps must be >= 1, not {c.sample_steps!r}",
    )
    need(c.guidance_scale >= 0, f"guidance_scale must be >= 0, not {c.guidance_scale!r}")
    need(
        c.class_guidance_scale is None or c.class_guidance_scale >= 0,
        f"class_guidance_scale must be >= 0 or None, not {c.class_guidance_scale!r}",
    )
    return problems


@dataclass(frozen=True)
class Progress:
    """After a step: steps done, steps in all, that step's loss and learning rate, seconds since
    the call started."""

    step: int
    total: int
    loss: float
    lr: float
    seconds: float


@dataclass
class TrainingResult:
    """What a finished run wrote and how it went. `output_path` is the LoRA file (LoRA mode) or
    the pipeline folder (full mode); `loss_curve` spans resumed runs too."""

    output_path: Path
    mode: str
    steps: int
    resumed_from_step: int | None
    loss_curve: list[tuple[int, float]]
    metrics: dict[str, float]
    validation_images: dict[int, list[Path]]
    seconds: float


class TrainingCanceled(Exception):
    """`should_stop()` said stop; `step` steps were done (the last checkpoint may be older)."""

    def __init__(self, step: int) -> None:
        super().__init__(f"Training canceled after step {step}.")
        self.step = step


# --- setup --------------------------------------------------------------------------------------


@dataclass
class _Models:
    tokenizer: Any
    text_encoder: Any
    vae: Any
    unet: Any
    noise_scheduler: Any
    pipeline: Any  # a StableDiffusionPipeline over the same modules, for sampling
    lora_configs: dict[str, Any] = field(default_factory=dict)


def _training_device(device: str, mixed_precision: str) -> tuple[torch.device, torch.dtype]:
    """The device, and the dtype of the frozen weights (trained ones stay float32)."""
    torch_device = torch.device(device)
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available here; use device='cpu'.")
    if mixed_precision == "no":
        return torch_device, torch.float32
    if torch_device.type != "cuda":
        raise ValueError(
            f"mixed_precision={mixed_precision!r} needs a CUDA device; on {torch_device.type} "
            "train in full precision (mixed_precision='no')."
        )
    if mixed_precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError("This GPU does not support bf16; use mixed_precision='fp16'.")
    return torch_device, torch.float16 if mixed_precision == "fp16" else torch.bfloat16


def _autocast(device: torch.device, dtype: torch.dtype) -> Any:
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _load_models(base_model_dir: Path, device: torch.device, dtype: torch.dtype) -> _Models:
    from diffusers import (
        AutoencoderKL,
        DDPMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTokenizer

    if not (base_model_dir / "model_index.json").is_file():
        raise FileNotFoundError(
            f"{base_model_dir} is not a diffusers pipeline folder (no model_index.json)."
        )
    tokenizer = CLIPTokenizer.from_pretrained(base_model_dir / "tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(base_model_dir / "text_encoder")
    vae = AutoencoderKL.from_pretrained(base_model_dir / "vae")
    unet = UNet2DConditionModel.from_pretrained(base_model_dir / "unet")
    # Training adds noise with the DDPM forward process; sampling keeps the folder's scheduler.
    noise_scheduler = DDPMScheduler.from_pretrained(base_model_dir / "scheduler")
    for module in (text_encoder, vae, unet):
        module.requires_grad_(False)
        module.to(device)
        if dtype != torch.float32:
            module.to(dtype=dtype)
    pipeline = StableDiffusionPipeline.from_pretrained(
        base_model_dir,
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        unet=unet,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.set_progress_bar_config(disable=True)
    return _Models(tokenizer, text_encoder, vae, unet, noise_scheduler, pipeline)


@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Draw initial weights from `seed` without touching the caller's random state."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _make_trainable(
    models: _Models, config: DreamBoothConfig, device: torch.device
) -> dict[str, torch.nn.Module]:
    """Add LoRA adapters or unfreeze; return the trained modules by name."""
    from peft import LoraConfig, inject_adapter_in_model

    trained: dict[str, torch.nn.Module] = {"unet": models.unet}
    if config.train_text_encoder:
        trained["text_encoder"] = models.text_encoder
    if config.mode == "full":
        for module in trained.values():
            module.to(dtype=torch.float32).requires_grad_(True)
    else:
        with _seeded(config.seed, device):
            unet_lora = LoraConfig(
                r=config.rank,
                lora_alpha=config.lora_scale_alpha,
                init_lora_weights="gaussian",  # B starts at zero: step 0 is the base model
                target_modules=UNET_LORA_TARGETS,
            )
            models.unet.add_adapter(unet_lora)
            models.lora_configs["unet"] = unet_lora
            if config.train_text_encoder:
                text_lora = LoraConfig(
                    r=config.rank,
                    lora_alpha=config.lora_scale_alpha,
                    init_lora_weights="gaussian",
                    target_modules=TEXT_ENCODER_LORA_TARGETS,
                )
                # peft directly: transformers 5.24's `add_adapter` refuses peft < 0.22.
                inject_adapter_in_model(text_lora, models.text_encoder)
                models.lora_configs["text_encoder"] = text_lora
        for module in trained.values():  # LoRA weights train in float32 under mixed precision
            for param in module.parameters():
                if param.requires_grad:
                    param.data = param.data.float()
    if config.gradient_checkpointing:
        models.unet.enable_gradient_checkpointing()
        if config.train_text_encoder:
            models.text_encoder.activation_checkpointing_enable(
                activation_checkpointing_kwargs={"use_reentrant": False}
            )
    return trained


# --- data ---------------------------------------------------------------------------------------


@dataclass
class _LatentBank:
    """The VAE posterior (mean, std) of each image, already scaled to the UNet's latent space.

    The VAE is frozen, so each image is encoded once; every step draws a fresh sample."""

    mean: torch.Tensor
    std: torch.Tensor

    def sample(self, count: int, generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(0, len(self.mean), (count,), generator=generator)
        noise = torch.randn((count, *self.mean.shape[1:]), generator=generator)
        return self.mean[index] + self.std[index] * noise.to(self.mean.device)


@torch.no_grad()
def _encode_images(vae: Any, pixels: torch.Tensor, device: torch.device) -> _LatentBank:
    means, stds = [], []
    for chunk in pixels.split(16):
        posterior = vae.encode(chunk.to(device, dtype=vae.dtype)).latent_dist
        means.append(posterior.mean.float())
        stds.append(posterior.std.float())
    scale = vae.config.scaling_factor
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return _LatentBank(mean=(torch.cat(means) - shift) * scale, std=torch.cat(stds) * scale)


def _token_ids(tokenizer: Any, prompt: str, device: torch.device) -> tuple[torch.Tensor, Any]:
    """Token ids (and the attention mask if the encoder uses one), as the pipeline makes them."""
    tokens = tokenizer(
        prompt,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    return tokens.input_ids.to(device), tokens.attention_mask.to(device)


def _prompt_embeds(text_encoder: Any, tokens: tuple[torch.Tensor, Any], count: int) -> torch.Tensor:
    ids, mask = tokens
    uses_mask = getattr(text_encoder.config, "use_attention_mask", False)
    embeds = text_encoder(ids, attention_mask=mask if uses_mask else None)[0]
    return embeds.expand(count, -1, -1)


@dataclass
class _Subject:
    """One half of a batch: the instance images and prompt, or the class images and prompt."""

    latents: _LatentBank
    tokens: tuple[torch.Tensor, Any]
    fixed_embeds: torch.Tensor | None = None  # computed once when the text encoder is frozen


def _subject(
    models: _Models, pixels: torch.Tensor, prompt: str, device: torch.device, frozen_text: bool
) -> _Subject:
    tokens = _token_ids(models.tokenizer, prompt, device)
    subject = _Subject(latents=_encode_images(models.vae, pixels, device), tokens=tokens)
    if frozen_text:
        with torch.no_grad():
            subject.fixed_embeds = _prompt_embeds(models.text_encoder, tokens, 1)
    return subject


# --- one step -----------------------------------------------------------------------------------


@dataclass
class _Run:
    """Everything the step function reads, built once per call."""

    models: _Models
    config: DreamBoothConfig
    device: torch.device
    dtype: torch.dtype
    instance: _Subject
    prior: _Subject | None  # the class half, with prior preservation
    generator: torch.Generator


def _draw(run: _Run, subject: _Subject) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch_size` latents of the subject's images and as many copies of its prompt."""
    count = run.config.batch_size
    latents = subject.latents.sample(count, run.generator)
    if subject.fixed_embeds is not None:
        return latents, subject.fixed_embeds.expand(count, -1, -1)
    return latents, _prompt_embeds(run.models.text_encoder, subject.tokens, count)


def _denoising_loss(run: _Run) -> tuple[torch.Tensor, float, float]:
    """(loss to minimise, instance loss, prior loss) of one micro-batch."""
    config, scheduler, generator = run.config, run.models.noise_scheduler, run.generator
    latents, embeds = _draw(run, run.instance)
    if run.prior is not None:
        # The paper's prior preservation: the class images ride in the same batch.
        class_latents, class_embeds = _draw(run, run.prior)
        latents = torch.cat([latents, class_latents])
        embeds = torch.cat([embeds, class_embeds])
    noise = torch.randn(latents.shape, generator=generator).to(run.device)
    timesteps = torch.randint(
        0, scheduler.config.num_train_timesteps, (len(latents),), generator=generator
    ).to(run.device)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    if scheduler.config.prediction_type == "epsilon":
        target = noise
    elif scheduler.config.prediction_type == "v_prediction":
        target = scheduler.get_velocity(latents, noise, timesteps)
    else:
        raise ValueError(f"Unsupported prediction_type {scheduler.config.prediction_type!r}.")
    prediction = run.models.unet(noisy, timesteps, encoder_hidden_states=embeds).sample
    if run.prior is None:
        loss = F.mse_loss(prediction.float(), target.float())
        return loss, loss.item(), 0.0
    prediction, prior_prediction = prediction.chunk(2)
    target, prior_target = target.chunk(2)
    instance_loss = F.mse_loss(prediction.float(), target.float())
    prior_loss = F.mse_loss(prior_prediction.float(), prior_target.float())
    loss = instance_loss + config.prior_loss_weight * prior_loss
    return loss, instance_loss.item(), prior_loss.item()


def _optimizer_step(
    run: _Run, params: list[torch.nn.Parameter], optimizer: Any, grad_scaler: Any
) -> tuple[float, float, float]:
    """One optimizer step over `gradient_accumulation_steps` micro-batches; mean losses."""
    accumulate = run.config.gradient_accumulation_steps
    totals = [0.0, 0.0, 0.0]
    optimizer.zero_grad(set_to_none=True)
    for _ in range(accumulate):
        with _autocast(run.device, run.dtype):
            loss, instance_loss, prior_loss = _denoising_loss(run)
        scaled = loss / accumulate
        (grad_scaler.scale(scaled) if grad_scaler is not None else scaled).backward()
        for i, value in enumerate((loss.item(), instance_loss, prior_loss)):
            totals[i] += value / accumulate
    if grad_scaler is not None:
        grad_scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(params, run.config.max_grad_norm)
    if grad_scaler is not None:
        grad_scaler.step(optimizer)
        grad_scaler.update()
    else:
        optimizer.step()
    return totals[0], totals[1], totals[2]


# --- validation and output ----------------------------------------------------------------------


def _render_validation(run: _Run, trained: dict[str, torch.nn.Module], folder: Path) -> list[Path]:
    """Each validation prompt with each seed, with the weights as they are now."""
    config = run.config
    for module in trained.values():
        module.eval()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    try:
        for index, prompt in enumerate(config.prompts_to_validate):
            with _autocast(run.device, run.dtype):
                output = run.models.pipeline(
                    prompt=[prompt] * len(config.validation_seeds),
                    generator=[
                        torch.Generator("cpu").manual_seed(s) for s in config.validation_seeds
                    ],
                    num_inference_steps=config.sample_steps,
                    guidance_scale=config.guidance_scale,
                    height=config.resolution,
                    width=config.resolution,
                )
            for seed, image in zip(config.validation_seeds, output.images, strict=True):
                path = folder / f"{index}-{seed}.png"
                image.save(path)
                paths.append(path)
    finally:
        for module in trained.values():
            module.train()
    return paths


def _validation_on_disk(output_dir: Path, up_to_step: int) -> dict[int, list[Path]]:
    """Validation images an earlier (resumed) run rendered, up to its checkpoint."""
    found: dict[int, list[Path]] = {}
    for folder in (output_dir / VALIDATION_DIR).glob("step-*"):
        step = folder.name.removeprefix("step-")
        if step.isdigit() and int(step) <= up_to_step:
            found[int(step)] = sorted(folder.glob("*.png"))
    return dict(sorted(found.items()))


def _save_lora(models: _Models, output_dir: Path) -> Path:
    """Write diffusers' LoRA file: the layout `StableDiffusionPipeline.save_lora_weights` uses,
    with each adapter's peft config as metadata so `lora_alpha` survives loading."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import get_peft_model_state_dict

    layers: dict[str, Any] = {}
    for name in models.lora_configs:
        module = models.unet if name == "unet" else models.text_encoder
        layers[name] = convert_state_dict_to_diffusers(get_peft_model_state_dict(module))
    metadata = {name: config.to_dict() for name, config in models.lora_configs.items()}
    staging = Path(tempfile.mkdtemp(prefix=".lora.", suffix=".partial", dir=output_dir))
    try:
        StableDiffusionPipeline.save_lora_weights(
            staging,
            unet_lora_layers=layers["unet"],
            text_encoder_lora_layers=layers.get("text_encoder"),
            unet_lora_adapter_metadata=metadata["unet"],
            text_encoder_lora_adapter_metadata=metadata.get("text_encoder"),
            safe_serialization=True,
        )
        os.replace(staging / LORA_WEIGHT_NAME, output_dir / LORA_WEIGHT_NAME)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir / LORA_WEIGHT_NAME


def _save_full_pipeline(
    trained: dict[str, torch.nn.Module], base_model_dir: Path, output_dir: Path
) -> Path:
    """A complete pipeline folder: the trained modules saved, every other component copied
    byte for byte from the base (so frozen parts keep their exact weights and dtype)."""
    final = output_dir / PIPELINE_DIR
    staging = Path(tempfile.mkdtemp(prefix=f".{PIPELINE_DIR}.", suffix=".partial", dir=output_dir))
    try:
        index = json.loads((base_model_dir / "model_index.json").read_text(encoding="utf-8"))
        shutil.copy2(base_model_dir / "model_index.json", staging / "model_index.json")
        if (base_model_dir / "easel.json").is_file():  # the platform's sampling defaults
            shutil.copy2(base_model_dir / "easel.json", staging / "easel.json")
        for component, spec in index.items():
            if component.startswith("_") or not isinstance(spec, list) or spec[0] is None:
                continue
            if component in trained:
                trained[component].save_pretrained(staging / component, safe_serialization=True)
            elif (base_model_dir / component).is_dir():
                shutil.copytree(base_model_dir / component, staging / component)
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


# --- the job ------------------------------------------------------------------------------------


def _lr_scheduler(config: DreamBoothConfig, optimizer: Any) -> Any:
    from diffusers.optimization import get_scheduler

    name = config.lr_scheduler
    if name == "constant" and config.lr_warmup_steps:
        name = "constant_with_warmup"
    return get_scheduler(
        name,
        optimizer,
        num_warmup_steps=config.lr_warmup_steps,
        num_training_steps=config.max_steps,
    )


def train_dreambooth(
    *,
    base_model_dir: Path,
    instance_images: Sequence[Image.Image],
    config: DreamBoothConfig,
    output_dir: Path,
    class_cache_dir: Path | None = None,
    device: str = "cpu",
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainingResult:
    """Fine-tune the pipeline at `base_model_dir` on `instance_images`; see the module docstring.

    Class images go to `class_cache_dir` (shared between jobs; by default
    `output_dir/class_images`). Raises `TrainingCanceled` when `should_stop()` returns True;
    calling again with the same arguments resumes from the latest checkpoint.
    """
    started = time.perf_counter()
    base_model_dir, output_dir = Path(base_model_dir), Path(output_dir)
    torch_device, dtype = _training_device(device, config.mixed_precision)
    instance_pixels = training_pixels(instance_images, config.resolution)
    output_dir.mkdir(parents=True, exist_ok=True)
    models = _load_models(base_model_dir, torch_device, dtype)

    frozen_text = not config.train_text_encoder
    prior, class_images_generated = None, 0
    if config.with_prior_preservation:
        class_set = ensure_class_images(
            base_model_dir=base_model_dir,
            class_prompt=config.class_prompt,
            count=config.num_class_images,
            resolution=config.resolution,
            seed=config.seed,
            cache_dir=class_cache_dir or output_dir / "class_images",
            num_inference_steps=config.sample_steps,
            guidance_scale=(
                config.guidance_scale
                if config.class_guidance_scale is None
                else config.class_guidance_scale
            ),
            make_pipeline=lambda: models.pipeline,  # still the base model: no adapters yet
        )
        class_images_generated = class_set.generated
        class_pixels = training_pixels(class_set.load(), config.resolution)
        prior = _subject(models, class_pixels, config.class_prompt, torch_device, frozen_text)
    instance = _subject(models, instance_pixels, config.instance_prompt, torch_device, frozen_text)

    trained = _make_trainable(models, config, torch_device)
    params = [p for module in trained.values() for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params,
        lr=config.learning_rate,
        betas=ADAM_BETAS,
        weight_decay=ADAM_WEIGHT_DECAY,
        eps=ADAM_EPSILON,
    )
    lr_scheduler = _lr_scheduler(config, optimizer)
    grad_scaler = torch.amp.GradScaler("cuda") if config.mixed_precision == "fp16" else None
    generator = torch.Generator("cpu").manual_seed(config.seed)
    run = _Run(
        models=models,
        config=config,
        device=torch_device,
        dtype=dtype,
        instance=instance,
        prior=prior,
        generator=generator,
    )

    checkpoints_dir = output_dir / CHECKPOINTS_DIR
    loss_curve: list[tuple[int, float]] = []
    resumed_from: int | None = None
    validation: dict[int, list[Path]] = {}
    latest = latest_checkpoint(checkpoints_dir)
    if latest is not None:
        if latest.step > config.max_steps:
            raise ValueError(
                f"{latest.path} is past max_steps={config.max_steps}; raise max_steps or "
                "start in an empty output folder."
            )
        state = load_checkpoint(
            latest,
            modules=trained,
            optimizer=optimizer,
            lr_scheduler=lr_scheduler,
            generator=generator,
            grad_scaler=grad_scaler,
        )
        resumed_from = latest.step
        loss_curve = [(int(step), float(loss)) for step, loss in state["loss_curve"]]
        validation = _validation_on_disk(output_dir, latest.step)

    for module in trained.values():
        module.train()
    first_step = (resumed_from or 0) + 1
    last: tuple[float, float, float] | None = None
    for step in range(first_step, config.max_steps + 1):
        if should_stop is not None and should_stop():
            raise TrainingCanceled(step - 1)
        lr = float(lr_scheduler.get_last_lr()[0])
        last = _optimizer_step(run, params, optimizer, grad_scaler)
        lr_scheduler.step()
        loss_curve.append((step, last[0]))
        if on_progress is not None:
            seconds = time.perf_counter() - started
            on_progress(Progress(step, config.max_steps, last[0], lr, seconds))
        if config.checkpoint_every and step % config.checkpoint_every == 0:
            save_checkpoint(
                checkpoints_dir,
                step=step,
                modules=trained,
                optimizer=optimizer,
                lr_scheduler=lr_scheduler,
                generator=generator,
                grad_scaler=grad_scaler,
                state={"loss_curve": loss_curve, "mode": config.mode},
                keep_last=config.checkpoints_total_limit,
            )
        if (
            config.validation_every
            and step % config.validation_every == 0
            and config.validation_seeds
        ):
            validation[step] = _render_validation(
                run, trained, output_dir / VALIDATION_DIR / f"step-{step}"
            )
    if config.validation_seeds and config.max_steps not in validation:
        validation[config.max_steps] = _render_validation(
            run, trained, output_dir / VALIDATION_DIR / f"step-{config.max_steps}"
        )

    for module in trained.values():
        module.eval()
    if config.mode == "lora":
        output_path = _save_lora(models, output_dir)
    else:
        output_path = _save_full_pipeline(trained, base_model_dir, output_dir)

    steps_run = config.max_steps - (resumed_from or 0)
    seconds = time.perf_counter() - started
    metrics = {
        "final_loss": loss_curve[-1][1] if loss_curve else float("nan"),
        "trainable_parameters": float(sum(p.numel() for p in params)),
        "num_instance_images": float(len(instance_images)),
        "class_images_generated": float(class_images_generated),
        "steps_this_run": float(steps_run),
    }
    if last is not None:
        metrics["final_instance_loss"], metrics["final_prior_loss"] = last[1], last[2]
    return TrainingResult(
        output_path=output_path,
        mode=config.mode,
        steps=config.max_steps,
        resumed_from_step=resumed_from,
        loss_curve=loss_curve,
        metrics=metrics,
        validation_images=dict(sorted(validation.items())),
        seconds=seconds,
    )
