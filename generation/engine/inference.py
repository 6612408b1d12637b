"""Batched inference on a loaded diffusers pipeline: text-to-image, image-to-image and
inpainting, each optionally grounded on a layout. Django-free.

One call runs one batch: every image shares mode, size, steps, guidance scale, strength and
scheduler, and each image has its own prompt, negative prompt, seed, layout and (for variations)
source image and mask. Image-to-image and inpainting run diffusers' pipelines built on the
loaded one's modules (``from_pipe``: no copy of the weights, the active LoRA included); an
inpainted image is composited back onto its source outside the mask (`composite_inpainted`), so
every pixel outside the mask is the source's. Each image gets its own ``torch.Generator``
seeded with its seed, so an image made in a batch of eight is the image made alone (up to float
rounding in the batched matmuls).

Cancellation and progress go through one callback, called after every denoising step
(diffusers' ``callback_on_step_end``). It returns ``True`` to stop: the call then raises
``InferenceCanceled`` at once, without decoding the latents.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .grounding import (
    DEFAULT_GROUNDING_FRACTION,
    LayoutBox,
    fusers_on,
    gligen_kwargs,
    is_grounded,
    uses_guidance,
)

MODES = ("txt2img", "img2img", "inpaint")

# Returns True to abort the batch. Arguments: steps done, total steps.
StepCallback = Callable[[int, int], bool]


class InferenceCanceled(Exception):
    """The step callback asked to stop; no images were produced."""

    def __init__(self, step: int, total: int) -> None:
        super().__init__(f"Canceled after step {step} of {total}.")
        self.step = step
        self.total = total


@dataclass(frozen=True)
class ImageSpec:
    """One image of a batch."""

    prompt: str
    seed: int
    negative_prompt: str = ""
    layout: tuple[LayoutBox, ...] = ()
    source: Any = None  # PIL RGB image, for img2img and inpaint
    mask: Any = None  # PIL "L" image, white where inpainting repaints


@dataclass(frozen=True)
class BatchSpec:
    """Settings shared by every image of a batch (one pipeline call takes one of each)."""

    width: int
    height: int
    steps: int
    cfg_scale: float
    images: Sequence[ImageSpec]
    scheduler_class: str | None = None  # a diffusers scheduler class name; None keeps the loaded
    mode: str = "txt2img"
    strength: float = 1.0  # img2img/inpaint: how much of the schedule is run from the source
    grounding_fraction: float = DEFAULT_GROUNDING_FRACTION  # share of steps the fusers act on
    feather: float = 0.0  # inpaint: the soft edge inside the mask, in pixels
    extra: dict[str, Any] = field(default_factory=dict)  # passed to the pipeline as-is


@dataclass
class BatchResult:
    images: list[Any]  # PIL images, in the order of ``BatchSpec.images``
    seconds: float  # wall time of the pipeline call (what a job is charged as GPU-seconds)


def _validate(spec: BatchSpec) -> None:
    if not spec.images:
        raise ValueError("A batch needs at least one image.")
    if spec.width % 8 or spec.height % 8 or spec.width <= 0 or spec.height <= 0:
        raise ValueError(
            f"Width and height must be positive multiples of 8, not {spec.width}×{spec.height}."
        )
    if spec.steps < 1:
        raise ValueError(f"Steps must be at least 1, not {spec.steps}.")
    if spec.mode not in MODES:
        raise ValueError(f"Unknown mode {spec.mode!r}; use one of {', '.join(MODES)}.")
    if spec.mode != "txt2img":
        if not 0.0 < spec.strength <= 1.0 or int(spec.steps * spec.strength) < 1:
            raise ValueError(
                f"Strength {spec.strength} at {spec.steps} steps runs no step; it must lie in "
                f"[1/steps, 1]."
            )
        if any(image.source is None for image in spec.images):
            raise ValueError(f"Every image of a {spec.mode} batch needs a source image.")
    if spec.mode == "inpaint" and any(image.mask is None for image in spec.images):
        raise ValueError("Every image of an inpaint batch needs a mask.")


def denoising_steps(spec: BatchSpec) -> int:
    """The steps a call really runs: a variation runs the last ``strength`` of the schedule
    (diffusers' ``int(steps * strength)``; the protocol refuses a strength that runs none)."""
    if spec.mode == "txt2img":
        return spec.steps
    return min(spec.steps, int(spec.steps * spec.strength))


def variant_pipeline(pipe: Any, mode: str) -> Any:
    """The pipeline for ``mode`` on ``pipe``'s modules, made once per loaded pipeline."""
    if mode == "txt2img":
        return pipe
    variants = pipe.__dict__.setdefault("_easel_variants", {})
    if mode not in variants:
        from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

        auto = AutoPipelineForImage2Image if mode == "img2img" else AutoPipelineForInpainting
        variant = auto.from_pipe(pipe)
        variant.set_progress_bar_config(disable=True)
        variants[mode] = variant
    variant = variants[mode]
    variant.scheduler = pipe.scheduler  # whatever `_use_scheduler` chose for this call
    return variant


def _fitted(image: Any, width: int, height: int) -> Any:
    from PIL import Image

    image = image.convert("RGB")
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    return image


def _fitted_mask(mask: Any, width: int, height: int) -> Any:
    """The mask at the output size, black (keep) or white (repaint) only: what diffusers'
    inpainting binarizes it to, so the composite keeps exactly what the model kept."""
    from PIL import Image

    mask = mask.convert("L")
    if mask.size != (width, height):
        mask = mask.resize((width, height), Image.Resampling.NEAREST)
    return mask.point(lambda value: 255 if value > 127 else 0)


def _inward_ramp(mask: Any, feather: float) -> Any:
    """0 outside the (binary) mask, rising linearly over ``feather`` pixels from its edge
    inwards to 1: each pixel's depth inside, by repeated 3×3 erosion. A region thinner than
    the ramp still gets part of the new image (a blur crossing 0.5 at the edge would give it
    none)."""
    import numpy as np
    from PIL import ImageFilter

    steps = max(1, round(feather))
    depth = np.zeros(mask.size[::-1], dtype=np.float32)
    current = mask
    for _ in range(steps):
        inside = np.asarray(current) > 127
        if not inside.any():
            break
        depth += inside
        current = current.filter(ImageFilter.MinFilter(3))
    return depth / steps


def composite_inpainted(source: Any, generated: Any, mask: Any, feather: float) -> Any:
    """``generated`` inside ``mask`` and ``source`` outside it, blended over a soft edge of
    about ``feather`` pixels that lies wholly inside the mask: every pixel outside the mask is
    the source's, exactly."""
    import numpy as np
    from PIL import Image

    binary = mask.convert("L").point(lambda value: 255 if value > 127 else 0)
    if feather > 0:
        alpha = _inward_ramp(binary, feather)
    else:
        alpha = np.asarray(binary, dtype=np.float32) / 255.0
    alpha = alpha[..., None]
    kept = np.asarray(source.convert("RGB"), dtype=np.float32)
    made = np.asarray(generated.convert("RGB"), dtype=np.float32)
    blended = np.where(alpha > 0, made * alpha + kept * (1.0 - alpha), kept)
    return Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))


def _use_scheduler(pipe: Any, class_name: str | None) -> None:
    """Swap the scheduler, keeping the model's noise schedule (its config)."""
    if not class_name or type(pipe.scheduler).__name__ == class_name:
        return
    import diffusers

    scheduler_cls = getattr(diffusers, class_name, None)
    if scheduler_cls is None or not hasattr(scheduler_cls, "from_config"):
        raise ValueError(f"Unknown diffusers scheduler {class_name!r}.")
    pipe.scheduler = scheduler_cls.from_config(pipe.scheduler.config)


def run_batch(pipe: Any, spec: BatchSpec, *, on_step: StepCallback | None = None) -> BatchResult:
    """Run one pipeline call for every image of ``spec``; raise ``InferenceCanceled`` on stop."""
    import torch

    _validate(spec)
    grounded = any(image.layout for image in spec.images)
    if grounded and not is_grounded(pipe):
        raise ValueError("A layout needs a GLIGEN model (a UNet with gated attention).")
    _use_scheduler(pipe, spec.scheduler_class)
    pipe.set_progress_bar_config(disable=True)
    runner = variant_pipeline(pipe, spec.mode)
    generator_device = "cpu" if pipe.device.type == "mps" else pipe.device
    generators = [torch.Generator(device=generator_device).manual_seed(i.seed) for i in spec.images]
    negatives = [i.negative_prompt for i in spec.images]
    total = denoising_steps(spec)
    kwargs: dict[str, Any] = {}
    if spec.mode == "txt2img" or spec.mode == "inpaint":
        kwargs.update(width=spec.width, height=spec.height)
    if spec.mode != "txt2img":
        kwargs["image"] = [_fitted(i.source, spec.width, spec.height) for i in spec.images]
        kwargs["strength"] = spec.strength
    if spec.mode == "inpaint":
        kwargs["mask_image"] = [_fitted_mask(i.mask, spec.width, spec.height) for i in spec.images]
    # Scheduled sampling counts on the full schedule (GLIGEN's definition; the fusers were
    # trained on those noise levels): a variation that starts later runs fewer grounded steps,
    # and none when it starts past them (its layout is the source's then).
    grounding_steps = round(spec.grounding_fraction * spec.steps) - (spec.steps - total)
    if spec.mode == "txt2img":
        grounding_steps = max(1, grounding_steps)
    grounded = grounded and grounding_steps > 0
    if grounded:
        guidance = uses_guidance(pipe, spec.cfg_scale)
        layouts = [image.layout for image in spec.images]
        kwargs["cross_attention_kwargs"] = {
            "gligen": gligen_kwargs(pipe, layouts, guidance=guidance)
        }

    with fusers_on(pipe.unet) as fusers:

        def step_end(pipeline: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
            if grounded and step + 1 == grounding_steps:
                for fuser in fusers:
                    fuser.enabled = False
            if on_step is not None and on_step(step + 1, total):
                raise InferenceCanceled(step + 1, total)
            return callback_kwargs

        started = time.perf_counter()
        with torch.inference_mode():
            output = runner(
                prompt=[i.prompt for i in spec.images],
                negative_prompt=negatives if any(negatives) else None,
                num_inference_steps=spec.steps,
                guidance_scale=spec.cfg_scale,
                num_images_per_prompt=1,
                generator=generators,
                callback_on_step_end=step_end,
                output_type="pil",
                **kwargs,
                **spec.extra,
            )
        seconds = time.perf_counter() - started
    images = list(output.images)
    if spec.mode == "inpaint":
        images = [
            composite_inpainted(source, made, mask, spec.feather)
            for source, made, mask in zip(
                kwargs["image"], images, kwargs["mask_image"], strict=True
            )
        ]
    return BatchResult(images=images, seconds=seconds)
