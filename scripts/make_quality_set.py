"""Regenerate tests/data/quality/, the quality gate's labelled evaluation set, from the cached
built-in ``shapes`` model: good renders and the defects derived from them, with a manifest.

    DJANGO_SETTINGS_MODULE=config.settings.local PYTHONPATH=. .venv/bin/python \\
        scripts/make_quality_set.py [--out tests/data/quality] [--model PIPELINE_DIR]

Without ``--model`` the pipeline folder comes from ``models_registry.builtin.shapes_pipeline_dir()``
(built into the cache first when missing: 8-10 minutes on two CPU cores). Rendering is
deterministic (CPU, one thread, fixed seeds, the model folder's own sampler settings), so a run
rewrites the same bytes for the same build; a changed build changes the renders, and the tests
then say whether the calibration still holds.

What the set holds (labels in ``manifest.json``, see `Entry`):

- **good**: every colour × shape × background caption at seeds 3000 and 3001 (the thresholds
  were tuned on seeds 2000-2015, so these are held out), as the report renders them (32 px, 20
  DDIM steps, guidance 5). A good render may have the wrong *shape*: no check judges shape.
  Two prompts are not good: "a purple box on a dark background" renders as a white blob with a
  magenta rim (kept as a ``wrong_colour`` defect of the model's own), and "a purple bottle on a
  white background" renders faint, neither clearly purple nor clearly not (left out). A render
  that repeats the other seed's render of its prompt (no pixel more than 24 of 255 apart; the
  model draws some prompts the same whatever the seed) is a ``duplicate`` of the model's own.
- **defects**, each derived from every fourth good render (its own quarter per class), with
  the question (`evaluation.QUESTION_KEYS`) that must flag it: blank, black, noise, blurred,
  over- and under-exposed, wrong size, duplicate, wrong colour, cropped subject, busy backdrop,
  and wrong backdrop (the render of the other backdrop's prompt, labelled with this one's).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generation.engine.quality.defects import (  # noqa: E402
    blurred,
    busy_backdrop,
    cropped,
    empty_backdrop,
    exposed,
    flat_fill,
    hue_rotated,
    near_copy,
    random_noise,
    resized,
)
from models_registry.engine.shapes_data import (  # noqa: E402
    BACKGROUND_NAMES,
    COLOUR_NAMES,
    SHAPES,
    caption_for,
)

SET_DIR = ROOT / "tests" / "data" / "quality"
SEEDS = (3000, 3001)
WRONG_BACKDROP_SEED = 3002
# (colour, shape, background) -> why its renders are not good (see the module docstring).
MODEL_WRONG_COLOUR = {("purple", "box", "dark"): "the model draws a white blob, magenta rim"}
LEFT_OUT = {("purple", "bottle", "white"): "renders faint: neither clearly purple nor not"}
SAME_RENDER_DELTA = 24  # of 255: two renders no pixel of which differs more are one picture
SIDES = ("top", "bottom", "left", "right")
Label = tuple[str, str, str]  # (colour, shape, background)


@dataclass
class Entry:
    """One image of the set and its labels, as a row of manifest.json.

    ``defect`` is "good" or the defect class; ``target`` the question key that must flag it
    (empty for a good image); ``source`` the good render a defect was derived from;
    ``duplicates`` the earlier image of its job that a duplicate repeats. Images with the same
    ``job`` are judged together (the near-duplicate check compares them), in manifest order.
    ``origin`` is "render" (as the model drew it), "model" (the model's own defect) or
    "derived".
    """

    file: str
    job: str
    prompt: str
    colour: str
    shape: str
    background: str
    seed: int
    defect: str
    target: str
    origin: str
    image: np.ndarray = field(repr=False)
    expected_size: tuple[int, int] = (32, 32)
    source: str = ""
    duplicates: str = ""
    note: str = ""

    def row(self) -> dict[str, object]:
        row = asdict(self)
        del row["image"]
        row["expected_size"] = list(self.expected_size)
        return row


def render_shapes(
    model_dir: Path, asked: list[tuple[str, str, str, int]], *, batch_size: int = 72
) -> np.ndarray:
    """(N, H, W, 3) uint8 renders of (colour, shape, background, seed), as the shapes report
    makes them (`models_registry.engine.shapes_report.evaluate_shapes_pipeline`)."""
    import torch
    from diffusers import StableDiffusionPipeline

    torch.set_num_threads(1)
    defaults = json.loads((Path(model_dir) / "easel.json").read_text(encoding="utf-8"))
    size = int(defaults["native_size"])
    pipeline = StableDiffusionPipeline.from_pretrained(model_dir)
    pipeline.set_progress_bar_config(disable=True)
    batches = []
    for start in range(0, len(asked), batch_size):
        chunk = asked[start : start + batch_size]
        with torch.inference_mode():
            result = pipeline(
                prompt=[caption_for(c, s, b) for c, s, b, _ in chunk],
                generator=[torch.Generator().manual_seed(seed) for *_, seed in chunk],
                num_inference_steps=int(defaults["steps"]),
                guidance_scale=float(defaults["cfg"]),
                guidance_rescale=float(defaults.get("guidance_rescale", 0.0)),
                height=size,
                width=size,
                output_type="np",
            )
        batches.append(np.clip(np.rint(result.images * 255.0), 0, 255).astype(np.uint8))
    return np.concatenate(batches)


def _labels() -> list[Label]:
    return [(c, s, b) for c in COLOUR_NAMES for s in SHAPES for b in BACKGROUND_NAMES]


def _name(label: Label, seed: int) -> str:
    return "-".join(label) + f"-{seed}"


def _render_entry(label: Label, seed: int, image: np.ndarray, **labels: object) -> Entry:
    colour, shape, background = label
    defaults: dict[str, object] = {
        "file": f"good/{_name(label, seed)}.png",
        "job": "-".join(label),
        "defect": "good",
        "target": "",
        "origin": "render",
    }
    return Entry(
        prompt=caption_for(colour, shape, background),
        colour=colour,
        shape=shape,
        background=background,
        seed=seed,
        image=image,
        **{**defaults, **labels},  # type: ignore[arg-type]
    )


def _overexposed(image: np.ndarray) -> np.ndarray:
    """Three times the exposure, or more for a dim render: enough that the subject's typical
    brightest channel lands at 1.5× full scale (a dim purple bottle at 3× is merely bright)."""
    inner = image[1:-1, 1:-1].astype(np.float64)
    return exposed(image, max(3.0, 1.5 * 255 / max(1.0, float(np.median(inner.max(axis=-1))))))


def _black(image: np.ndarray, index: int) -> np.ndarray:
    """A black output: zeros, or (every other one) the faint noise a decoder adds to zeros."""
    if index % 2 == 0:
        return np.zeros_like(image)
    return np.random.default_rng(index).integers(0, 4, image.shape, dtype=np.uint8)


# defect class -> (target question key, builder of the defect from a good render and its index).
DERIVED: dict[str, tuple[str, Callable[[np.ndarray, int], np.ndarray]]] = {
    "blank": ("blank_or_flat", lambda im, i: empty_backdrop(im) if i % 2 == 0 else flat_fill(im)),
    "black": ("black_or_nan", _black),
    "noise": ("noise", lambda im, i: random_noise(im, i)),
    "blurred": ("blur", lambda im, i: blurred(im, box=i % 2 == 1, passes=1 + i % 2)),
    "overexposed": ("exposure", lambda im, i: _overexposed(im)),
    "underexposed": ("exposure", lambda im, i: exposed(im, 0.2)),
    "wrong_size": ("wrong_size", lambda im, i: resized(im, im.shape[1], im.shape[0] * 3 // 4)),
    "wrong_colour": ("colour", lambda im, i: hue_rotated(im, (90, 180, 270)[i % 3])),
    "cropped": ("subject", lambda im, i: cropped(im, SIDES[i % 4])),
    "busy_backdrop": ("backdrop", lambda im, i: busy_backdrop(im, i)),
}


def build_set(
    renders: dict[tuple[str, str, str, int], np.ndarray],
    seeds: Iterable[int] = SEEDS,
    wrong_backdrop_seed: int = WRONG_BACKDROP_SEED,
) -> list[Entry]:
    """The set's entries (images included) from renders of every label at `seeds` and at
    `wrong_backdrop_seed` (`asked_renders`), in manifest order: each prompt's job (its renders,
    then the duplicates derived from them), then the other defects class by class."""
    jobs: dict[str, list[Entry]] = {}
    for label in _labels():
        if label in LEFT_OUT:
            continue
        job = jobs.setdefault("-".join(label), [])
        for seed in seeds:
            job.append(_judged_render(label, seed, renders[(*label, seed)], job))
    goods = [entry for job in jobs.values() for entry in job if entry.defect == "good"]
    standalone: list[Entry] = []
    classes = [*DERIVED, "duplicate", "wrong_backdrop"]
    for position, defect in enumerate(classes):
        for index, good in enumerate(goods[position % 4 :: 4]):
            stem = f"{defect}-{index:02d}-{good.colour}-{good.shape}-{good.background}"
            derived = replace(
                good, file=f"defect/{stem}.png", job=stem, defect=defect, source=good.file
            )
            if defect == "duplicate":  # judged with the job it repeats, after it
                copy = near_copy(good.image, index)
                jobs[good.job].append(
                    replace(
                        derived,
                        job=good.job,
                        target="near_duplicate",
                        origin="derived",
                        duplicates=good.file,
                        image=copy,
                    )
                )
            elif defect == "wrong_backdrop":  # what a model that ignores the backdrop draws
                other = next(b for b in BACKGROUND_NAMES if b != good.background)
                image = renders[(good.colour, good.shape, other, wrong_backdrop_seed)]
                standalone.append(
                    replace(
                        derived,
                        seed=wrong_backdrop_seed,
                        target="backdrop",
                        origin="render",
                        source="",
                        note=f"the render of the {other}-background prompt",
                        image=image,
                    )
                )
            else:
                target, build = DERIVED[defect]
                image = build(good.image, index)
                standalone.append(replace(derived, target=target, origin="derived", image=image))
    return [entry for job in jobs.values() for entry in job] + standalone


def _judged_render(label: Label, seed: int, image: np.ndarray, job: list[Entry]) -> Entry:
    """A render as good, or as a defect of the model's own (see the module docstring)."""
    if label in MODEL_WRONG_COLOUR:
        return _render_entry(
            label,
            seed,
            image,
            file=f"model/wrong_colour-{_name(label, seed)}.png",
            defect="wrong_colour",
            target="colour",
            origin="model",
            note=MODEL_WRONG_COLOUR[label],
        )
    same = next((entry for entry in job if _same_picture(entry.image, image)), None)
    if same is not None:
        return _render_entry(
            label,
            seed,
            image,
            file=f"model/duplicate-{_name(label, seed)}.png",
            defect="duplicate",
            target="near_duplicate",
            origin="model",
            duplicates=same.file,
            note="the model drew this prompt the same at another seed",
        )
    return _render_entry(label, seed, image)


def _same_picture(first: np.ndarray, second: np.ndarray) -> bool:
    difference = np.abs(first.astype(np.int16) - second.astype(np.int16))
    return bool(difference.max() <= SAME_RENDER_DELTA)


def asked_renders(
    seeds: Iterable[int] = SEEDS, wrong_backdrop_seed: int = WRONG_BACKDROP_SEED
) -> list[tuple[str, str, str, int]]:
    """Every render `build_set` needs: each label at `seeds` and at `wrong_backdrop_seed`."""
    return [(*label, seed) for label in _labels() for seed in (*seeds, wrong_backdrop_seed)]


def write_set(entries: list[Entry], out: Path) -> int:
    """Write the PNGs and manifest.json under `out` (emptied of PNGs first); bytes written."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.rglob("*.png"):
        old.unlink()
    for entry in entries:
        path = out / entry.file
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(entry.image).save(path, optimize=True)
    manifest = {
        "about": (
            "The quality gate's evaluation set: renders of the built-in shapes model and "
            "defects derived from them. Regenerate with scripts/make_quality_set.py."
        ),
        "images": [entry.row() for entry in entries],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return sum(path.stat().st_size for path in out.rglob("*") if path.is_file())


def default_model_dir() -> Path:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import django

    django.setup()
    from models_registry.builtin import shapes_pipeline_dir

    return shapes_pipeline_dir()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SET_DIR)
    parser.add_argument("--model", type=Path, help="shapes pipeline folder (default: cached)")
    args = parser.parse_args()
    model_dir = args.model or default_model_dir()
    asked = asked_renders()
    images = render_shapes(model_dir, asked)
    entries = build_set(dict(zip(asked, images, strict=True)))
    size = write_set(entries, args.out)
    defects = sum(entry.defect != "good" for entry in entries)
    print(f"{len(entries)} images ({defects} defects), {size} bytes in {args.out}")


if __name__ == "__main__":
    main()
