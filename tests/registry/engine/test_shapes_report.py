"""The prompt-following report's bookkeeping, on rendered shots (no model): accuracies per colour
and per shape, named prompt sets on their own lines, and the prompts a template can ask."""

import numpy as np
import pytest

from models_registry.engine.shapes_data import (
    BACKGROUND_NAMES,
    COLOUR_NAMES,
    SHAPES,
    caption_for,
    render_shots,
)
from models_registry.engine.shapes_report import (
    CAPTIONS,
    contact_sheet,
    judge_images,
    labelled_prompts,
)


@pytest.fixture(scope="module")
def labels() -> list[tuple[str, str, str]]:
    return [(c, s, b) for c in COLOUR_NAMES for s in SHAPES for b in BACKGROUND_NAMES]


@pytest.fixture(scope="module")
def shots(labels: list[tuple[str, str, str]]) -> np.ndarray:
    colours, shapes, backgrounds = (list(names) for names in zip(*labels, strict=True))
    return render_shots(colours, shapes, backgrounds, seed=0)


def test_per_shape_accuracy_counts_each_shape_asked(labels, shots) -> None:
    # Every shot asked as a bottle: only the bottles are right, and the report says so per shape.
    asked = [(c, "bottle", b, 0) for c, _s, b in labels]
    report = judge_images(shots, asked)
    truth = judge_images(shots, [(c, s, b, 0) for c, s, b in labels])
    assert report.shape_accuracy_by_shape == {"bottle": pytest.approx(1 / 3, abs=0.05)}
    assert set(truth.shape_accuracy_by_shape) == set(SHAPES)
    assert truth.shape_accuracy_by_shape["bottle"] >= 0.9
    summary = truth.summary().splitlines()
    assert summary[0].startswith(f"{len(labels)} images: colour 1.000, background 1.000, shape ")
    assert summary[1].startswith("  per colour: red 1.00, orange 1.00")
    assert summary[2].startswith("  per shape: apple ")


def test_each_prompt_set_gets_its_own_line_and_subset(labels, shots) -> None:
    prompts = [caption_for(c, s, b) for c, s, b in labels]
    prompts[0] = "a red apple, studio light, on a white background"  # only in the second set
    report = judge_images(shots, [(c, s, b, 0) for c, s, b in labels], prompts=prompts)
    report.prompt_sets.update(
        {
            CAPTIONS: frozenset(caption_for(c, s, b) for c, s, b in labels),
            "house style": frozenset(prompts[:2]),
        }
    )
    assert f"  {CAPTIONS}, {len(labels) - 1} images: colour 1.000" in report.summary()
    assert "  house style, 2 images: colour 1.000, background 1.000" in report.summary()
    house = report.subset("house style")
    assert len(house.verdicts) == 2 and house.images.shape[0] == 2
    assert report.to_dict()["prompt_sets"]["house style"]["num_images"] == 2
    with pytest.raises(ValueError, match="no prompt set 'other'"):
        report.subset("other")


def test_contact_sheet_refuses_two_images_for_one_tile(labels, shots, tmp_path) -> None:
    asked = [(c, s, b, 0) for c, s, b in labels]
    twice = judge_images(np.concatenate([shots, shots]), asked + asked)
    with pytest.raises(ValueError, match="share a tile"):
        contact_sheet(twice, tmp_path / "sheet.png")


def test_labelled_prompts_keep_what_a_template_can_ask() -> None:
    free = labelled_prompts(lambda c, s, b: f"a {c} {s} on a {b} background")
    fixed = labelled_prompts(lambda c, s, b: f"a {c} {s} on a white background")
    assert len(free) == len(COLOUR_NAMES) * len(SHAPES) * len(BACKGROUND_NAMES)
    assert ("a orange box on a dark background", "orange", "box", "dark") in free
    assert len(fixed) == len(COLOUR_NAMES) * len(SHAPES)
    assert {background for *_, background in fixed} == {"white"}
    # A prompt that names no colour, or another one as well, does not ask for the one rendered.
    assert labelled_prompts(lambda c, s, b: f"a {s} on a {b} background") == []
    two = labelled_prompts(lambda c, s, b: f"a {c} {s} and a green {s} on a {b} background")
    assert {colour for _, colour, *_ in two} == {"green"}
