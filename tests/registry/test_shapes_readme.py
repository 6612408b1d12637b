"""The README's prompt-following table: one row per build seed, rewritten between its markers;
rows of today's recipe stay, rows of another recipe go."""

from __future__ import annotations

import pytest

from models_registry.shapes_readme import BEGIN, END, HEADER, intro, readme_with_row, report_row

FIGURES = {
    "colour_accuracy": 0.9464,
    "background_accuracy": 1.0,
    "shape_accuracy": 0.6846,
    "colour_accuracy_by_colour": {"red": 1.0, "purple": 0.75},
    "shape_accuracy_by_shape": {"apple": 0.964, "box": 0.161},
    "num_images": 168,
    "prompt_sets": {
        "training captions": {
            "num_prompts": 36,
            "num_images": 144,
            "colour_accuracy": 0.9583,
            "background_accuracy": 1.0,
            "shape_accuracy": 0.6736,
        },
        "demo templates": {
            "num_prompts": 36,
            "num_images": 144,
            "colour_accuracy": 0.9375,
            "background_accuracy": 1.0,
            "shape_accuracy": 0.6806,
        },
    },
    "settings": {"num_seeds": 4},
}
TODAY = {0: "shapes-00000000000000a0", 1: "shapes-00000000000000a1", 2: "shapes-00000000000000a2"}
README = f"# Easel\n\nBefore.\n\n{BEGIN}\nHand-written, to be replaced.\n\n{END}\n\nAfter.\n"


def _row(seed: int, folder: str | None = None) -> str:
    return report_row(
        FIGURES, seed=seed, default_seed=0, build_seconds=586.6, folder=folder or TODAY[seed]
    )


def _write(text: str, seed: int, folder: str | None = None) -> tuple[str, list[int]]:
    return readme_with_row(
        text,
        seed=seed,
        row=_row(seed, folder),
        intro_text=intro(FIGURES),
        folder_for_seed=TODAY.__getitem__,
    )


def test_row_shows_totals_per_colour_per_shape_each_prompt_set_and_the_build() -> None:
    assert _row(0) == (
        "| 0 (default) | 0.946 | 1.000 | 0.685 | red 1.00, purple 0.75 | apple 0.96, box 0.16 "
        "| 0.958 / 1.000 / 0.674 | 0.938 / 1.000 / 0.681 | 587 s | `shapes-00000000000000a0` |"
    )
    assert _row(1).startswith("| 1 | ")


def test_intro_says_what_was_asked() -> None:
    assert (
        "training captions (36 prompts) and demo templates (36 prompts), 4 seeds each, "
        "168 distinct images"
    ) in intro(FIGURES)


def test_the_block_is_replaced_and_the_rest_of_the_readme_kept() -> None:
    text, dropped = _write(README, seed=0)
    assert dropped == []
    assert text.startswith("# Easel\n\nBefore.\n\n" + BEGIN + "\n")
    assert text.endswith(f"\n\n{END}\n\nAfter.\n")
    assert "Hand-written" not in text
    assert HEADER in text and _row(0) in text


def test_another_seeds_row_is_added_in_seed_order_and_rewriting_replaces_it() -> None:
    text, _ = _write(_write(README, seed=2)[0], seed=0)
    text, dropped = _write(text, seed=1)
    text, _ = _write(text, seed=1)
    assert dropped == []
    rows = [line for line in text.splitlines() if line.startswith("| ") and "`shapes-" in line]
    assert [line.split(" | ")[0] for line in rows] == ["| 0 (default)", "| 1", "| 2"]


def test_a_row_of_another_recipe_is_dropped() -> None:
    text, _ = _write(README, seed=1, folder="shapes-00000000000000ff")  # built before a change
    text, dropped = _write(text, seed=0)
    assert dropped == [1]
    assert "shapes-00000000000000ff" not in text


def test_a_readme_without_the_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="no <!-- shapes-report:begin -->"):
        _write("# Easel\n", seed=0)
