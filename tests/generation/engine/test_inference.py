"""Batched inference (``run_batch``) on the tiny pipeline, CPU fp32: the pixels a seed makes are
pinned (diffusers' ``expected_slice``), so a torch or diffusers upgrade that shifts every image
fails here instead of passing every "same seed, same image" test; an image made in a batch is the
image made alone; a stop request ends the call before decoding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from generation.engine.inference import BatchSpec, ImageSpec, InferenceCanceled, run_batch

torch = pytest.importorskip("torch")

PROMPT = "a red apple on a white background"
# The bottom-right 3×3 pixels (RGB, 0..255) of PROMPT at seed 7, 64×64, 2 DDIM steps, guidance 5,
# from the seed-0 tiny build; measured with torch 2.13 and diffusers 0.42 on CPU, same with one or
# two threads. After an upgrade that changes them on purpose, pin the values the failure prints.
EXPECTED_SLICE = np.array(
    [
        [[123, 163, 165], [142, 123, 141], [143, 105, 138]],
        [[99, 114, 174], [120, 102, 180], [103, 110, 147]],
        [[136, 121, 119], [128, 102, 118], [118, 108, 120]],
    ]
)


@pytest.fixture(scope="module")
def pipe(tiny_pipeline_dir: Path) -> Any:
    """A pipeline of its own: run_batch swaps schedulers in place, other tests' must not leak."""
    from diffusers import StableDiffusionPipeline

    torch.set_num_threads(2)
    return StableDiffusionPipeline.from_pretrained(tiny_pipeline_dir)


def _spec(*images: ImageSpec, steps: int = 2) -> BatchSpec:
    return BatchSpec(width=64, height=64, steps=steps, cfg_scale=5.0, images=images)


def _pixels(image: Any) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_seed_7_makes_the_pinned_pixels(pipe: Any) -> None:
    image = _pixels(run_batch(pipe, _spec(ImageSpec(PROMPT, seed=7))).images[0])
    assert image.shape == (64, 64, 3)
    got = image[-3:, -3:, :]
    # ±1: a rounding step of the uint8 conversion, nothing a person could see.
    assert np.abs(got - EXPECTED_SLICE).max() <= 1, f"pixels moved; now {got.tolist()}"


def test_an_image_made_in_a_batch_is_the_image_made_alone(pipe: Any) -> None:
    alone = _pixels(run_batch(pipe, _spec(ImageSpec(PROMPT, seed=7))).images[0])
    batch = run_batch(
        pipe, _spec(ImageSpec("a blue box on a dark background", seed=3), ImageSpec(PROMPT, seed=7))
    )
    assert len(batch.images) == 2
    assert np.abs(_pixels(batch.images[1]) - alone).max() <= 1  # batched matmuls round otherwise
    assert np.abs(_pixels(batch.images[0]) - alone).max() > 10


def test_a_stop_request_cancels_after_that_step(pipe: Any) -> None:
    seen: list[tuple[int, int]] = []

    def stop_after_first(step: int, total: int) -> bool:
        seen.append((step, total))
        return step == 1

    with pytest.raises(InferenceCanceled, match="after step 1 of 3"):
        run_batch(pipe, _spec(ImageSpec(PROMPT, seed=7), steps=3), on_step=stop_after_first)
    assert seen == [(1, 3)]


@pytest.mark.parametrize(
    ("width", "steps", "message"),
    [(60, 2, "multiples of 8"), (64, 0, "at least 1")],
)
def test_a_batch_it_cannot_run_is_refused_before_the_pipeline(
    width: int, steps: int, message: str
) -> None:
    spec = BatchSpec(width=width, height=64, steps=steps, cfg_scale=5.0, images=[ImageSpec("x", 1)])
    with pytest.raises(ValueError, match=message):
        run_batch(object(), spec)
