"""Synthetic product shots: seeded, varied, and captioned with what they show."""

import numpy as np
import pytest

from models_registry.engine.shapes_data import (
    BACKGROUND_NAMES,
    COLOUR_NAMES,
    SHAPES,
    caption_for,
    make_shapes_dataset,
)
from models_registry.engine.shapes_report import judge_images


def test_same_seed_gives_identical_shots_and_another_seed_differs() -> None:
    first, second = make_shapes_dataset(64, seed=3), make_shapes_dataset(64, seed=3)
    assert np.array_equal(first.images, second.images)
    assert first.captions == second.captions
    assert not np.array_equal(first.images, make_shapes_dataset(64, seed=4).images)


def test_shots_are_32px_rgb_and_cover_every_label() -> None:
    data = make_shapes_dataset(400, seed=0)
    assert data.images.shape == (400, 32, 32, 3)
    assert data.images.dtype == np.uint8
    assert set(data.colour_ids) == set(range(len(COLOUR_NAMES))) and len(COLOUR_NAMES) >= 6
    assert set(data.shape_ids) == set(range(len(SHAPES)))
    assert set(data.background_ids) == set(range(len(BACKGROUND_NAMES)))
    # Varied sizes and positions: no two shots of the same caption are pixel-identical.
    for caption in set(data.captions):
        same = data.images[[i for i, c in enumerate(data.captions) if c == caption]]
        assert len({image.tobytes() for image in same}) == len(same)


def test_captions_use_the_platform_prompt_style() -> None:
    assert caption_for("red", "apple", "white") == "a red apple on a white background"
    assert caption_for("orange", "box", "dark") == "an orange box on a dark background"
    data = make_shapes_dataset(50, seed=1)
    for caption, c, s, b in zip(
        data.captions, data.colour_ids, data.shape_ids, data.background_ids, strict=True
    ):
        assert caption == caption_for(COLOUR_NAMES[c], SHAPES[s], BACKGROUND_NAMES[b])


def test_captions_match_what_the_shots_show() -> None:
    data = make_shapes_dataset(300, seed=11)
    asked = [
        (COLOUR_NAMES[c], SHAPES[s], BACKGROUND_NAMES[b], 0)
        for c, s, b in zip(data.colour_ids, data.shape_ids, data.background_ids, strict=True)
    ]
    report = judge_images(data.images, asked)
    assert report.colour_accuracy == 1.0
    assert report.background_accuracy == 1.0
    assert report.shape_accuracy >= 0.97


def test_rejects_empty_dataset() -> None:
    with pytest.raises(ValueError, match="num_images"):
        make_shapes_dataset(0, seed=0)
