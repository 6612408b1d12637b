"""Does a grounded model put the product where the layout says? A measure independent of the
model and of the quality gate: the centre of the largest saturated blob (`shapes_report`'s own
product mask) of each image, against the box that was asked for.

Every colour × product × background prompt, several seeds, four boxes — the left and right
halves and the top and bottom halves — so each (prompt, seed) is drawn once per box: the report
says how often the centre lands inside the box, and, for the same prompt and seed, how often the
product moves the way the other box of a pair says (right of where "left" put it, below where
"top" put it). Sampling goes through the serving path (`generation.engine.inference.run_batch`,
imported here only: this module is the report, not the build).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models_registry.engine.shapes_data import (
    BACKGROUND_NAMES,
    COLOUR_NAMES,
    SHAPES,
    caption_for,
    render_shots,
)
from models_registry.engine.shapes_report import _largest_blob, foreground_mask

BOXES: dict[str, tuple[float, float, float, float]] = {
    "left": (0.0, 0.2, 0.5, 1.0),
    "right": (0.5, 0.2, 1.0, 1.0),
    "top": (0.15, 0.0, 0.85, 0.5),
    "bottom": (0.15, 0.5, 0.85, 1.0),
}
# (box, the other box, the axis the product should move along, the sign of the move).
PAIRS = (("left", "right", 0), ("top", "bottom", 1))
DEFAULT_SEEDS = (0, 1, 2, 3)


@dataclass(frozen=True)
class LayoutReport:
    inside: dict[str, float]  # per box: share of images whose product centre is in the box
    mean_centre: dict[str, tuple[float, float]]
    moved: dict[str, float]  # per pair: share of (prompt, seed) whose centre moved as asked
    images: int
    missing: int  # images with no product found (counted as outside)

    def lines(self) -> list[str]:
        out = [f"{self.images} images ({self.missing} with no product found)"]
        for name, share in self.inside.items():
            cx, cy = self.mean_centre[name]
            out.append(
                f"  {name:<7} centre inside the box {share:.3f}   mean centre ({cx:.2f}, {cy:.2f})"
            )
        for pair, share in self.moved.items():
            out.append(f"  {pair:<13} same prompt and seed, moved the way asked {share:.3f}")
        return out


def centre(image: np.ndarray) -> tuple[float, float] | None:
    """The product's centre (x, y), relative: the centroid of the largest saturated blob."""
    blob = _largest_blob(foreground_mask(image))
    if not blob.any():
        return None
    rows, cols = np.nonzero(blob)
    height, width = blob.shape
    return float((cols.mean() + 0.5) / width), float((rows.mean() + 0.5) / height)


def evaluate_layout(
    pipe: Any, *, seeds: Sequence[int] = DEFAULT_SEEDS, steps: int = 20, cfg: float = 5.0,
    grounding_fraction: float = 0.5, size: int = 32,
) -> LayoutReport:  # fmt: skip
    from generation.engine.grounding import LayoutBox
    from generation.engine.inference import BatchSpec, ImageSpec, run_batch

    prompts = [
        (caption_for(c, s, b), f"{c} {s}")
        for c in COLOUR_NAMES
        for s in SHAPES
        for b in BACKGROUND_NAMES
    ]
    found: dict[str, list[tuple[float, float] | None]] = {}
    for name, box in BOXES.items():
        specs = [
            ImageSpec(prompt, seed, layout=(LayoutBox(phrase, box),))
            for prompt, phrase in prompts
            for seed in seeds
        ]
        images = []
        for start in range(0, len(specs), 48):
            batch = BatchSpec(
                size, size, steps, cfg, specs[start : start + 48],
                grounding_fraction=grounding_fraction,
            )  # fmt: skip
            images += run_batch(pipe, batch).images
        found[name] = [centre(np.asarray(image.convert("RGB"))) for image in images]
    inside, means = {}, {}
    for name, centres in found.items():
        x0, y0, x1, y1 = BOXES[name]
        hits = [c is not None and x0 <= c[0] <= x1 and y0 <= c[1] <= y1 for c in centres]
        inside[name] = float(np.mean(hits))
        seen = np.array([c for c in centres if c is not None] or [(np.nan, np.nan)])
        means[name] = (float(seen[:, 0].mean()), float(seen[:, 1].mean()))
    moved = {}
    for first, second, axis in PAIRS:
        pairs = [(a, b) for a, b in zip(found[first], found[second], strict=True) if a and b]
        moved[f"{first}→{second}"] = float(np.mean([b[axis] > a[axis] for a, b in pairs] or [0]))
    total = sum(len(c) for c in found.values())
    missing = sum(c is None for centres in found.values() for c in centres)
    return LayoutReport(
        inside=inside, mean_centre=means, moved=moved, images=total, missing=missing
    )


# img2img: a shot varied into another prompt, and into its own (the VAE's round trip is the floor).
STRENGTH_SOURCE = ("green", "bottle", "white")
STRENGTH_PROMPTS = ("a blue box on a white background", "a green bottle on a white background")
STRENGTHS = (0.2, 0.9)


def strength_distances(
    pipe: Any, *, seeds: Sequence[int] = DEFAULT_SEEDS
) -> dict[tuple[str, float], float]:
    """Mean absolute distance (of 255) from a synthetic shot of each img2img of it, per
    (prompt, strength), over ``seeds``: how much of the source a strength keeps. Without a layout
    a grounded model draws what its base does, so these are the base model's figures too."""
    from PIL import Image

    from generation.engine.inference import BatchSpec, ImageSpec, run_batch

    colour, shape, background = STRENGTH_SOURCE
    shot = render_shots([colour], [shape], [background], seed=4)[0]
    source = Image.fromarray(shot)
    out = {}
    for prompt in STRENGTH_PROMPTS:
        for strength in STRENGTHS:
            images = [ImageSpec(prompt, seed, source=source) for seed in seeds]
            spec = BatchSpec(32, 32, 20, 5.0, images, mode="img2img", strength=strength)
            made = run_batch(pipe, spec).images
            out[prompt, strength] = float(
                np.mean(
                    [np.abs(np.asarray(m, np.int16) - shot.astype(np.int16)).mean() for m in made]
                )
            )
    return out


def layout_sheet(pipe: Any, path: Path, *, seed: int = 0, scale: int = 3) -> Path:
    """One row per box (drawn in blue) of a few prompts at ``seed``: what the report measures."""
    from PIL import Image, ImageDraw

    from generation.engine.grounding import LayoutBox
    from generation.engine.inference import BatchSpec, ImageSpec, run_batch

    prompts = [("a red apple on a white background", "red apple"),
               ("a blue box on a dark background", "blue box"),
               ("a green bottle on a white background", "green bottle"),
               ("a yellow apple on a dark background", "yellow apple")]  # fmt: skip
    rows = []
    for box in BOXES.values():
        specs = [ImageSpec(p, seed, layout=(LayoutBox(ph, box),)) for p, ph in prompts]
        rows.append(
            run_batch(pipe, BatchSpec(32, 32, 20, 5.0, specs, grounding_fraction=0.5)).images
        )
    side = 32 * scale
    sheet = Image.new("RGB", (side * len(prompts), side * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (images, box) in enumerate(zip(rows, BOXES.values(), strict=True)):
        for c, image in enumerate(images):
            sheet.paste(image.resize((side, side), Image.Resampling.NEAREST), (c * side, r * side))
            x0, y0, x1, y1 = box
            draw.rectangle(
                [c * side + x0 * (side - 1), r * side + y0 * (side - 1),
                 c * side + x1 * (side - 1), r * side + y1 * (side - 1)],
                outline=(37, 99, 235),
            )  # fmt: skip
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return Path(path)
