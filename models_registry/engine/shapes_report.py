"""Prompt-following report for the `shapes` model: does it draw the colour, shape, background asked?

For every colour × shape × background it generates images with fixed seeds, then judges each
image with simple, transparent classifiers:

- background: the median brightness of the image border (white or dark);
- colour: the majority vote of the hues of the saturated ("foreground") pixels, each assigned to
  the nearest named colour's hue — shading changes brightness, not hue, and shadows, highlights
  and backdrops are unsaturated, so they do not vote;
- shape: the largest connected blob of foreground pixels — tall (bottle), or filling its
  bounding box (box), or round (apple).

The same classifiers label the training shots almost perfectly (see tests), so a miss on a
generated image is the model's. Besides the training captions, callers may add named sets of
other prompts (the demo's templates, say), each labelled with what it asks; `labelled_prompts`
builds such a set from any prompt renderer. `contact_sheet` lays the captions' images out for
docs/shapes-model.png.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from models_registry.engine.shapes_data import (
    BACKGROUND_NAMES,
    COLOUR_NAMES,
    COLOURS,
    SHAPES,
    caption_for,
)

REPORT_SEEDS: tuple[int, ...] = (1000, 1001, 1002, 1003)
CAPTIONS = "training captions"  # the prompt set every report has: caption_for(...) of each label
# (prompt, colour, shape, background): a prompt and what it asks for.
LabelledPrompt = tuple[str, str, str, str]
_MIN_CHROMA = 60  # max(R, G, B) - min(R, G, B) on 0..255: below this a pixel is grey-ish
_MIN_VALUE = 50
_MIN_FOREGROUND_PIXELS = 4
_BOTTLE_MIN_ASPECT = 1.55
_BOX_MIN_FILL = 0.86


def _hue_degrees(rgb: np.ndarray) -> np.ndarray:
    """Hue in degrees of (..., 3) RGB values (0..255)."""
    rgb = rgb.astype(np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    high = rgb.max(axis=-1)
    chroma = high - rgb.min(axis=-1)
    safe = np.where(chroma == 0, 1.0, chroma)
    hue = np.where(
        high == r,
        ((g - b) / safe) % 6.0,
        np.where(high == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0),
    )
    return hue * 60.0


_PALETTE_HUES = _hue_degrees(np.array([COLOURS[name] for name in COLOUR_NAMES]))


def foreground_mask(image: np.ndarray) -> np.ndarray:
    """Saturated, not-too-dark pixels of an (H, W, 3) uint8 image: the product, not the set."""
    pixels = image.astype(np.int16)
    chroma = pixels.max(axis=-1) - pixels.min(axis=-1)
    return (chroma >= _MIN_CHROMA) & (pixels.max(axis=-1) >= _MIN_VALUE)


def classify_background(image: np.ndarray) -> str:
    """'white' or 'dark' from the median brightness of a two-pixel border."""
    border = np.concatenate(
        [
            image[:2].reshape(-1, 3),
            image[-2:].reshape(-1, 3),
            image[:, :2].reshape(-1, 3),
            image[:, -2:].reshape(-1, 3),
        ]
    )
    brightness = float(np.median(border.astype(np.float32).mean(axis=-1)))
    return "white" if brightness >= 128 else "dark"


def classify_colour(image: np.ndarray) -> str | None:
    """The named colour most foreground pixels are closest to in hue, or None if no foreground."""
    mask = foreground_mask(image)
    if mask.sum() < _MIN_FOREGROUND_PIXELS:
        return None
    hues = _hue_degrees(image[mask])
    distance = np.abs(hues[:, None] - _PALETTE_HUES[None, :])
    distance = np.minimum(distance, 360.0 - distance)
    votes = np.bincount(distance.argmin(axis=1), minlength=len(COLOUR_NAMES))
    return COLOUR_NAMES[int(votes.argmax())]


def _largest_blob(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected component of a boolean mask."""
    labels = np.zeros(mask.shape, dtype=np.int32)
    best_label, best_size, next_label = 0, 0, 0
    height, width = mask.shape
    for start_y, start_x in zip(*np.nonzero(mask), strict=True):
        if labels[start_y, start_x]:
            continue
        next_label += 1
        labels[start_y, start_x] = next_label
        stack, size = [(start_y, start_x)], 0
        while stack:
            y, x = stack.pop()
            size += 1
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < height and 0 <= nx < width and mask[ny, nx] and not labels[ny, nx]:
                    labels[ny, nx] = next_label
                    stack.append((ny, nx))
        if size > best_size:
            best_label, best_size = next_label, size
    return labels == best_label if best_label else np.zeros_like(mask)


def classify_shape(image: np.ndarray) -> str | None:
    """'bottle' (tall), 'box' (fills its bounding box) or 'apple' (round); None if no foreground."""
    blob = _largest_blob(foreground_mask(image))
    if blob.sum() < _MIN_FOREGROUND_PIXELS:
        return None
    rows, cols = np.nonzero(blob)
    height = rows.max() - rows.min() + 1
    width = cols.max() - cols.min() + 1
    if height / width >= _BOTTLE_MIN_ASPECT:
        return "bottle"
    fill = blob.sum() / (height * width)
    return "box" if fill >= _BOX_MIN_FILL else "apple"


@dataclass(frozen=True)
class ShotVerdict:
    """One generated image: what was asked and what the classifiers saw."""

    colour: str
    shape: str
    background: str
    seed: int
    predicted_colour: str | None
    predicted_shape: str | None
    predicted_background: str
    prompt: str


def _accuracies(verdicts: Sequence[ShotVerdict]) -> tuple[float, float, float]:
    """(colour, background, shape) accuracy of `verdicts`."""
    count = len(verdicts)
    return (
        sum(v.predicted_colour == v.colour for v in verdicts) / count,
        sum(v.predicted_background == v.background for v in verdicts) / count,
        sum(v.predicted_shape == v.shape for v in verdicts) / count,
    )


def _accuracy_by(verdicts: Sequence[ShotVerdict], label: str) -> dict[str, float]:
    """Accuracy of the `label` ("colour" or "shape") per value asked, in order of first use."""
    hits: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for verdict in verdicts:
        asked = getattr(verdict, label)
        totals[asked] += 1
        hits[asked] += getattr(verdict, f"predicted_{label}") == asked
    return {name: hits[name] / totals[name] for name in totals}


def _line(verdicts: Sequence[ShotVerdict]) -> str:
    colour, background, shape = _accuracies(verdicts)
    return f"colour {colour:.3f}, background {background:.3f}, shape {shape:.3f}"


@dataclass(frozen=True)
class ShapesReport:
    """Accuracies over all generated images, per-image verdicts, and the images themselves.

    `prompt_sets` names the prompts of each set judged (`CAPTIONS`, and any the caller added);
    a prompt in two sets was generated once and counts once in the totals.
    """

    colour_accuracy: float
    shape_accuracy: float
    background_accuracy: float
    colour_accuracy_by_colour: dict[str, float]
    shape_accuracy_by_shape: dict[str, float]
    verdicts: list[ShotVerdict]
    images: np.ndarray = field(repr=False)
    settings: dict[str, float | int | str]
    prompt_sets: dict[str, frozenset[str]] = field(default_factory=dict)

    def subset(self, name: str) -> ShapesReport:
        """The report of one prompt set alone (its images, its accuracies)."""
        if name not in self.prompt_sets:
            raise ValueError(f"no prompt set {name!r}; this report has {sorted(self.prompt_sets)}")
        keep = [i for i, v in enumerate(self.verdicts) if v.prompt in self.prompt_sets[name]]
        report = _report([self.verdicts[i] for i in keep], self.images[keep])
        report.settings.update(self.settings)
        report.prompt_sets[name] = self.prompt_sets[name]
        return report

    def summary(self) -> str:
        """The totals, per colour, per shape, then one line per prompt set when there are two."""
        by_colour = ", ".join(f"{n} {a:.2f}" for n, a in self.colour_accuracy_by_colour.items())
        by_shape = ", ".join(f"{n} {a:.2f}" for n, a in self.shape_accuracy_by_shape.items())
        lines = [
            f"{len(self.verdicts)} images: {_line(self.verdicts)}",
            f"  per colour: {by_colour}",
            f"  per shape: {by_shape}",
        ]
        if len(self.prompt_sets) > 1:
            for name, prompts in self.prompt_sets.items():
                chosen = [v for v in self.verdicts if v.prompt in prompts]
                lines.append(f"  {name}, {len(chosen)} images: {_line(chosen)}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        sets: dict[str, object] = {}
        for name, prompts in self.prompt_sets.items():
            chosen = [v for v in self.verdicts if v.prompt in prompts]
            colour, background, shape = _accuracies(chosen)
            sets[name] = {
                "num_prompts": len(prompts),
                "num_images": len(chosen),
                "colour_accuracy": colour,
                "background_accuracy": background,
                "shape_accuracy": shape,
            }
        return {
            "colour_accuracy": self.colour_accuracy,
            "shape_accuracy": self.shape_accuracy,
            "background_accuracy": self.background_accuracy,
            "colour_accuracy_by_colour": self.colour_accuracy_by_colour,
            "shape_accuracy_by_shape": self.shape_accuracy_by_shape,
            "num_images": len(self.verdicts),
            "prompt_sets": sets,
            "settings": self.settings,
        }


def _report(verdicts: list[ShotVerdict], images: np.ndarray) -> ShapesReport:
    colour, background, shape = _accuracies(verdicts)
    return ShapesReport(
        colour_accuracy=colour,
        shape_accuracy=shape,
        background_accuracy=background,
        colour_accuracy_by_colour=_accuracy_by(verdicts, "colour"),
        shape_accuracy_by_shape=_accuracy_by(verdicts, "shape"),
        verdicts=verdicts,
        images=images,
        settings={},
    )


def judge_images(
    images: np.ndarray,
    asked: list[tuple[str, str, str, int]],
    *,
    prompts: Sequence[str] | None = None,
) -> ShapesReport:
    """Classify `images` (N, H, W, 3) uint8 against the (colour, shape, background, seed) asked.

    `prompts` are the prompts the images were made from; by default each label's caption.
    """
    if len(images) != len(asked) or not asked:
        raise ValueError(
            "need one (colour, shape, background, seed) per image, and at least one image"
        )
    if prompts is None:
        prompts = [caption_for(colour, shape, background) for colour, shape, background, _ in asked]
    if len(prompts) != len(asked):
        raise ValueError(f"need one prompt per image: {len(prompts)} for {len(asked)} images")
    verdicts = [
        ShotVerdict(
            colour=colour,
            shape=shape,
            background=background,
            seed=seed,
            predicted_colour=classify_colour(image),
            predicted_shape=classify_shape(image),
            predicted_background=classify_background(image),
            prompt=prompt,
        )
        for image, (colour, shape, background, seed), prompt in zip(
            images, asked, prompts, strict=True
        )
    ]
    return _report(verdicts, images)


def _names_in(prompt: str, names: Sequence[str], suffix: str = "") -> set[str]:
    return {name for name in names if re.search(rf"\b{re.escape(name + suffix)}\b", prompt)}


def labelled_prompts(
    render: Callable[[str, str, str], str],
    *,
    colours: Sequence[str] = COLOUR_NAMES,
    shapes: Sequence[str] = SHAPES,
    backgrounds: Sequence[str] = BACKGROUND_NAMES,
) -> list[LabelledPrompt]:
    """`render(colour, shape, background)` for every colour × shape × background, labelled.

    A prompt is kept only when it names exactly the colour, shape and background ("… background")
    it was rendered for: a template that fixes its background ("on a white background") is asked
    only for that one. Repeated prompts are dropped. `render` is the caller's (a platform's
    template renderer, say), so this module needs nothing but the names.
    """
    prompts: dict[LabelledPrompt, None] = {}
    for colour in colours:
        for shape in shapes:
            for background in backgrounds:
                prompt = " ".join(render(colour, shape, background).split())
                said = prompt.lower()
                if (
                    _names_in(said, COLOUR_NAMES) == {colour}
                    and _names_in(said, SHAPES) == {shape}
                    and _names_in(said, BACKGROUND_NAMES, " background") == {background}
                ):
                    prompts[(prompt, colour, shape, background)] = None
    return list(prompts)


def _check_labels(name: str, prompts: Sequence[LabelledPrompt]) -> None:
    if not prompts:
        raise ValueError(f"prompt set {name!r} is empty")
    for prompt, colour, shape, background in prompts:
        if colour not in COLOUR_NAMES or shape not in SHAPES or background not in BACKGROUND_NAMES:
            raise ValueError(
                f"prompt {prompt!r} of set {name!r} asks for ({colour}, {shape}, {background}); "
                f"labels must be among {COLOUR_NAMES}, {SHAPES} and {BACKGROUND_NAMES}"
            )


def evaluate_shapes_pipeline(
    model_dir: Path,
    *,
    colours: tuple[str, ...] = COLOUR_NAMES,
    shapes: tuple[str, ...] = SHAPES,
    backgrounds: tuple[str, ...] = BACKGROUND_NAMES,
    seeds: tuple[int, ...] = REPORT_SEEDS,
    extra_prompts: Mapping[str, Sequence[LabelledPrompt]] | None = None,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    batch_size: int = 72,
    num_threads: int = 2,
) -> ShapesReport:
    """Generate every colour × shape × background with each seed and judge the images.

    `extra_prompts` adds named sets of (prompt, colour, shape, background), each generated with
    the same seeds and reported on its own line as well as in the totals; a prompt already asked
    (a caption, or one in an earlier set) is generated once. Sampling settings default to the
    model folder's `easel.json` (20 DDIM steps, guidance 5).
    """
    extra_prompts = dict(extra_prompts or {})
    if CAPTIONS in extra_prompts:
        raise ValueError(f"{CAPTIONS!r} names the captions' own set; give yours another name")
    for name, labelled in extra_prompts.items():
        _check_labels(name, labelled)

    import torch
    from diffusers import StableDiffusionPipeline

    model_dir = Path(model_dir)
    defaults = json.loads((model_dir / "easel.json").read_text(encoding="utf-8"))
    steps = num_inference_steps or int(defaults["steps"])
    guidance = guidance_scale if guidance_scale is not None else float(defaults["cfg"])
    rescale = float(defaults.get("guidance_rescale", 0.0))
    size = int(defaults["native_size"])
    prompt_sets: dict[str, Sequence[LabelledPrompt]] = {
        CAPTIONS: [
            (caption_for(c, s, b), c, s, b) for c in colours for s in shapes for b in backgrounds
        ],
        **extra_prompts,
    }
    distinct = dict.fromkeys(labelled for prompts in prompt_sets.values() for labelled in prompts)
    asked = [(labelled, seed) for labelled in distinct for seed in seeds]

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        pipeline = StableDiffusionPipeline.from_pretrained(model_dir)
        pipeline.set_progress_bar_config(disable=True)
        batches: list[np.ndarray] = []
        for start in range(0, len(asked), batch_size):
            chunk = asked[start : start + batch_size]
            with torch.inference_mode():
                result = pipeline(
                    prompt=[prompt for (prompt, *_), _ in chunk],
                    generator=[torch.Generator().manual_seed(seed) for _, seed in chunk],
                    num_inference_steps=steps,
                    guidance_scale=guidance,
                    guidance_rescale=rescale,
                    height=size,
                    width=size,
                    output_type="np",
                )
            batches.append(np.clip(np.rint(result.images * 255.0), 0, 255).astype(np.uint8))
    finally:
        torch.set_num_threads(previous_threads)
    report = judge_images(
        np.concatenate(batches),
        [(c, s, b, seed) for (_, c, s, b), seed in asked],
        prompts=[prompt for (prompt, *_), _ in asked],
    )
    report.settings.update(
        {
            "steps": steps,
            "guidance_scale": guidance,
            "guidance_rescale": rescale,
            "num_seeds": len(seeds),
        }
    )
    report.prompt_sets.update(
        {name: frozenset(p for p, *_ in prompts) for name, prompts in prompt_sets.items()}
    )
    return report


def contact_sheet(report: ShapesReport, path: Path, *, scale: int = 2) -> Path:
    """Save a PNG grid: one row per colour, columns grouped by shape × background, one per seed.

    A miss (colour or background not as asked) gets a thin magenta underline. Each tile holds
    one (colour, shape, background, seed): for a report with other prompt sets than the
    captions, lay out one of them (`report.subset(CAPTIONS)`).
    """
    tiles = Counter((v.colour, v.shape, v.background, v.seed) for v in report.verdicts)
    if max(tiles.values()) > 1:
        raise ValueError(
            "two images would share a tile (one label asked by several prompts); "
            "lay out one prompt set: contact_sheet(report.subset(CAPTIONS), ...)"
        )
    colours = list(dict.fromkeys(v.colour for v in report.verdicts))
    groups = list(dict.fromkeys((v.shape, v.background) for v in report.verdicts))
    seeds = list(dict.fromkeys(v.seed for v in report.verdicts))
    tile = report.images.shape[1] * scale
    gap, label_w, header_h = 2, 52, 14
    group_w = len(seeds) * (tile + gap) + 6
    sheet = Image.new(
        "RGB",
        (label_w + len(groups) * group_w, header_h + len(colours) * (tile + gap + 2)),
        (255, 255, 255),
    )
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for g, (shape, background) in enumerate(groups):
        draw.text((label_w + g * group_w, 1), f"{shape} / {background}", fill=(0, 0, 0), font=font)
    for r, colour in enumerate(colours):
        draw.text(
            (2, header_h + r * (tile + gap + 2) + tile // 2 - 5), colour, fill=(0, 0, 0), font=font
        )
    for verdict, image in zip(report.verdicts, report.images, strict=True):
        r = colours.index(verdict.colour)
        g = groups.index((verdict.shape, verdict.background))
        s = seeds.index(verdict.seed)
        x = label_w + g * group_w + s * (tile + gap)
        y = header_h + r * (tile + gap + 2)
        sheet.paste(Image.fromarray(image).resize((tile, tile), Image.Resampling.NEAREST), (x, y))
        missed = (
            verdict.predicted_colour != verdict.colour
            or verdict.predicted_background != verdict.background
        )
        if missed:
            draw.rectangle((x, y + tile, x + tile - 1, y + tile + 1), fill=(255, 0, 255))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)
    return path
