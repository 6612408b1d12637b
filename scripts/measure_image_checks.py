"""Measure the quality gate's built-in image checks: precision and recall, on synthetic shots
and on real renders of the built-in ``shapes`` model.

Synthetic: good product shots (6 colours × 3 shapes × 2 backdrops × seeds, at 32 and 64 px)
and, derived from each, every defect the tests use (tests/generation/engine/test_quality_checks
.py). For each check: the range of its value on good shots and on its own defects, recall on
those defects, and precision against good shots (a flag on a good shot is a false positive).
Defects aimed at other checks that a check also flags are listed apart: a black image is also
under-exposed, which is true rather than a false positive.

Renders (``--model``): the evaluation set's recipe (scripts/make_quality_set.py) at other seeds,
2000-2015 by default, the seeds the thresholds were calibrated on (the shipped set uses 3000 and
3001, held out): every caption rendered, its defects derived, all judged by the check judge as
`generation.engine.quality.evaluation` does; then each check's value on good renders and on its
own defects.

    PYTHONPATH=. .venv/bin/python scripts/measure_image_checks.py [--seeds 8] [--first-seed 8]
    DJANGO_SETTINGS_MODULE=config.settings.local PYTHONPATH=. .venv/bin/python \
        scripts/measure_image_checks.py --renders [--model DIR] [--render-seeds 2000 ...]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from generation.engine.quality import checks
from generation.engine.quality.defects import (
    blurred,
    cropped,
    empty_backdrop,
    exposed,
    flat_fill,
    hue_rotated,
    near_copy,
    random_noise,
    resized,
)
from generation.engine.quality.evaluation import LabelledImage, evaluate
from models_registry.engine.shapes_data import render_shots
from tests.generation.engine.test_quality_checks import render_jobs

SIDES = ("top", "bottom", "left", "right")
LUMA = np.array([0.299, 0.587, 0.114])


def defects_of(shot: np.ndarray, index: int) -> dict[str, list[np.ndarray]]:
    """Each defect class of one good shot. All are checked against the shot's own size and
    colour, so a wrong-colour one fails only by its hue."""
    size = shot.shape[0]
    nan = shot.astype(np.float32) / 255
    nan[: size // 2] = np.nan
    return {
        "blank": [flat_fill(shot), empty_backdrop(shot)],
        "black": [np.zeros_like(shot), nan],
        "over-exposed": [exposed(shot, 3.0)],
        "under-exposed": [exposed(shot, 0.2)],
        "blurred": [blurred(shot), blurred(shot, box=True, passes=2 if size <= 32 else 1)],
        "noise": [random_noise(shot, index)],
        "wrong size": [resized(shot, size, size * 3 // 4)],
        "cropped": [cropped(shot, SIDES[index % 4])],
        "wrong colour": [hue_rotated(shot, degrees) for degrees in (90, 180, 270)],
    }


TARGETS = {
    "blank_or_flat": ("blank",),
    "black_or_nan": ("black",),
    "exposure": ("over-exposed", "under-exposed"),
    "blur": ("blurred",),
    "noise": ("noise",),
    "wrong_size": ("wrong size",),
    "near_duplicate": ("duplicate",),
    "subject_cropped": ("cropped",),
    "colour_expectation": ("wrong colour",),
}


def measure(sizes: tuple[int, ...], seeds: tuple[int, ...]) -> None:
    # results[check][class] -> list of (passed, value)
    results: dict[str, dict[str, list[tuple[bool, float | None]]]] = defaultdict(
        lambda: defaultdict(list)
    )

    def record(label: str, image_results: list[checks.CheckResult]) -> None:
        for result in image_results:
            results[result.check][label].append((result.passed, result.value))

    good_highlights = []  # what under-exposure is judged by; a passing result reports clipping
    for size in sizes:
        for colour, shots in render_jobs(size, seeds):
            good_highlights += [np.percentile(shot @ LUMA, 99) for shot in shots]
            job = run(list(shots), size, colour)
            for image_results in job:
                record("good", image_results)
            for index, shot in enumerate(shots):
                # Each defect alone, as a job of one: two defects of one shot are near-copies.
                for label, images in defects_of(shot, index).items():
                    for image in images:
                        record(label, run([image], size, colour)[0])
                # A job whose later outputs repeat an earlier one, exactly and nearly.
                repeated = run([*shots, shot.copy(), near_copy(shot, index)], size, colour)
                for image_results in repeated[-2:]:
                    record("duplicate", image_results)

    print(f"sizes {sizes}, seeds {len(seeds)}: {len(results['blur']['good'])} good shots\n")
    header = (
        f"{'check':20} {'good value':>16} {'defect value':>16} {'recall':>16} {'precision':>16}"
    )
    print(header + "  also flags")
    for check, targets in TARGETS.items():
        good = results[check]["good"]
        positives = [item for label in targets for item in results[check][label]]
        caught = sum(not passed for passed, _ in positives)
        false_flags = sum(not passed for passed, _ in good)
        others = {
            label: sum(not passed for passed, _ in items) / len(items)
            for label, items in results[check].items()
            if label not in (*targets, "good") and any(not passed for passed, _ in items)
        }
        print(
            f"{check:20} {span(good):>16} {span(positives):>16} "
            f"{f'{caught}/{len(positives)}':>16} {f'{caught}/{caught + false_flags}':>16}  "
            + ", ".join(f"{label} {share:.0%}" for label, share in sorted(others.items()))
        )
        if check == "exposure":
            highlights = f"≥ {min(good_highlights):.1f}"
            print(f"{'  over-exposed':20} {'':>16} {span(results[check]['over-exposed']):>16}")
            under = span(results[check]["under-exposed"])
            print(f"{'  under-exposed':20} {highlights:>16} {under:>16}  (brightest 1%, 0-255)")


def run(images: list[np.ndarray], size: int, colour: str) -> list[list[checks.CheckResult]]:
    return checks.run_image_checks(images, expected_size=(size, size), expected_colour=colour)


def span(items: list[tuple[bool, float | None]]) -> str:
    values = [value for _, value in items if value is not None]
    return f"{min(values):.3g}..{max(values):.3g}" if values else "-"


def measure_sharpness_by_size(sizes: tuple[int, ...]) -> None:
    """The blur measure on good and blurred shots as the resolution grows."""
    print("\nsharpness by size (good min, Gaussian-blurred by 1/16 of the side max):")
    for size in sizes:
        count = 6 if size >= 1024 else 36
        colours = ["red", "orange", "yellow", "green", "blue", "purple"] * 6
        shapes = ["apple", "box", "bottle"] * 12
        backgrounds = (["white"] * 3 + ["dark"] * 3) * 6
        shots = render_shots(colours[:count], shapes[:count], backgrounds[:count], 0, size)
        good = [checks.sharpness(shot) for shot in shots]
        soft = [checks.sharpness(blurred(shot)) for shot in shots]
        print(f"  {size:5} px: good ≥ {min(good):.2f}, blurred ≤ {max(soft):.2f}")


CALIBRATION_SEEDS = tuple(range(2000, 2016))
CALIBRATION_WRONG_BACKDROP_SEED = 2016
# (check, its value on an image, the defect classes it targets) for the value spans on renders.
RENDER_VALUES = (
    ("blank_or_flat", lambda im, e: checks.blank_or_flat(im).value, ("blank",)),
    ("black_or_nan", lambda im, e: checks.black_or_nan(im).value, ("black",)),
    ("overexposed", lambda im, e: _blown_share(im), ("overexposed",)),
    ("underexposed", lambda im, e: float(np.percentile(im @ LUMA, 99)), ("underexposed",)),
    ("sharpness", lambda im, e: checks.sharpness(im), ("blurred", "noise")),
    ("cropped share", lambda im, e: checks.subject_cropped(im).value, ("cropped",)),
    ("colour share", lambda im, e: checks.subject_colour(im)[1].get(e.colour, 0.0), ()),
    ("plain backdrop", lambda im, e: checks.backdrop(im).value, ("busy_backdrop",)),
)


def _blown_share(image: np.ndarray) -> float:
    result = checks.exposure(image)
    return result.value if result.reason.startswith(("Over", "Exposure")) else float("nan")


def measure_renders(model_dir: Path, seeds: tuple[int, ...]) -> None:
    """The evaluation set's recipe at `seeds`, judged; then each check's values on it."""
    from scripts.make_quality_set import asked_renders, build_set, render_shapes

    asked = asked_renders(seeds, CALIBRATION_WRONG_BACKDROP_SEED)
    renders = dict(zip(asked, render_shapes(model_dir, asked), strict=True))
    entries = build_set(renders, seeds, CALIBRATION_WRONG_BACKDROP_SEED)
    labelled = [
        LabelledImage(
            file=e.file,
            job=e.job,
            prompt=e.prompt,
            colour=e.colour,
            background=e.background,
            defect=e.defect,
            target=e.target,
            pixels=e.image,
            expected_size=e.expected_size,
        )
        for e in entries
    ]
    print(f"renders of {model_dir}, seeds {seeds[0]}-{seeds[-1]}\n")
    print(evaluate(labelled).format_report())
    print(f"\n{'value':16} {'good renders':>16} {'own defects':>16}")
    for name, value_of, targets in RENDER_VALUES:
        good = [value_of(e.image, e) for e in entries if e.defect == "good"]
        own = [value_of(e.image, e) for e in entries if e.defect in targets]
        print(f"{name:16} {_span(good):>16} {_span(own):>16}")


def _span(values: list[float | None]) -> str:
    known = [v for v in values if v is not None and not np.isnan(v)]
    return f"{min(known):.3g}..{max(known):.3g}" if known else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8, help="seeds per prompt (default 8)")
    parser.add_argument("--first-seed", type=int, default=0, help="e.g. 8 for held-out shots")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--sharpness-sizes", type=int, nargs="*", default=[32, 64, 256, 1024])
    parser.add_argument("--renders", action="store_true", help="measure on shapes renders")
    parser.add_argument("--model", type=Path, help="shapes pipeline folder (default: cached)")
    parser.add_argument("--render-seeds", type=int, nargs="+", default=list(CALIBRATION_SEEDS))
    args = parser.parse_args()
    if args.renders:
        from scripts.make_quality_set import default_model_dir

        measure_renders(args.model or default_model_dir(), tuple(args.render_seeds))
        return
    measure(tuple(args.sizes), tuple(range(args.first_seed, args.first_seed + args.seeds)))
    if args.sharpness_sizes:
        measure_sharpness_by_size(tuple(args.sharpness_sizes))


if __name__ == "__main__":
    main()
