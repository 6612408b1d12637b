"""Measure the quality gate's built-in image checks on synthetic shots: precision and recall.

Good product shots (6 colours × 3 shapes × 2 backdrops × seeds, at 32 and 64 px) and, derived
from each, every defect the tests use (tests/generation/engine/test_quality_checks.py). For
each check: the range of its value on good shots and on its own defects, recall on those
defects, and precision against good shots (a flag on a good shot is a false positive). Defects
aimed at other checks that a check also flags are listed apart: a black image is also
under-exposed, which is true rather than a false positive.

    PYTHONPATH=. .venv/bin/python scripts/measure_image_checks.py [--seeds 8] [--first-seed 8]
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

from generation.engine.quality import checks
from models_registry.engine.shapes_data import render_shots
from tests.generation.engine.test_quality_checks import (
    blurred,
    cropped,
    empty_backdrop,
    exposed,
    flat_fill,
    hue_rotated,
    near_copy,
    random_noise,
    render_jobs,
    resized,
)

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
        "under-exposed": [exposed(shot, 0.25)],
        "blurred": [blurred(shot), blurred(shot, box=True)],
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8, help="seeds per prompt (default 8)")
    parser.add_argument("--first-seed", type=int, default=0, help="e.g. 8 for held-out shots")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--sharpness-sizes", type=int, nargs="*", default=[32, 64, 256, 1024])
    args = parser.parse_args()
    measure(tuple(args.sizes), tuple(range(args.first_seed, args.first_seed + args.seeds)))
    if args.sharpness_sizes:
        measure_sharpness_by_size(tuple(args.sharpness_sizes))


if __name__ == "__main__":
    main()
