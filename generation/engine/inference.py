"""Batched text-to-image inference on a loaded diffusers pipeline. Django-free.

One call runs one batch: every image shares size, steps, guidance scale and scheduler, and each
image has its own prompt, negative prompt and seed. Each image gets its own ``torch.Generator``
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


@dataclass(frozen=True)
class BatchSpec:
    """Settings shared by every image of a batch (one pipeline call takes one of each)."""

    width: int
    height: int
    steps: int
    cfg_scale: float
    images: Sequence[ImageSpec]
    scheduler_class: str | None = None  # a diffusers scheduler class name; None keeps the loaded
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
    _use_scheduler(pipe, spec.scheduler_class)
    pipe.set_progress_bar_config(disable=True)
    generator_device = "cpu" if pipe.device.type == "mps" else pipe.device
    generators = [torch.Generator(device=generator_device).manual_seed(i.seed) for i in spec.images]
    negatives = [i.negative_prompt for i in spec.images]

    def step_end(pipeline: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
        if on_step is not None and on_step(step + 1, spec.steps):
            raise InferenceCanceled(step + 1, spec.steps)
        return callback_kwargs

    started = time.perf_counter()
    with torch.inference_mode():
        output = pipe(
            prompt=[i.prompt for i in spec.images],
            negative_prompt=negatives if any(negatives) else None,
            width=spec.width,
            height=spec.height,
            num_inference_steps=spec.steps,
            guidance_scale=spec.cfg_scale,
            num_images_per_prompt=1,
            generator=generators,
            callback_on_step_end=step_end,
            output_type="pil",
            **spec.extra,
        )
    seconds = time.perf_counter() - started
    return BatchResult(images=list(output.images), seconds=seconds)
