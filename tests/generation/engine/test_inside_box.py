"""The built-in "is the product inside box B?" check, on synthetic shots whose boxes are known
exactly (`shapes_data.render_shots_with_boxes`): in the right box it passes, in a box elsewhere
it fails; a question means its own box, else the job layout's box it numbers, else the first;
the quality gate asks it like any other check and a rubric item validates its box."""

from __future__ import annotations

import numpy as np
import pytest

from generation.engine.quality import checks
from generation.engine.quality.check_judge import CheckJudge, question_box
from generation.engine.quality.judges import JudgedImage, Question
from generation.rubrics import rubric_clean
from models_registry.engine.shapes_data import ANYWHERE, render_shots_with_boxes

COLOURS = ["red", "orange", "yellow", "green", "blue", "purple"] * 4
SHAPES = ["apple", "box", "bottle"] * 8
BACKGROUNDS = ["white", "dark"] * 12


@pytest.fixture(scope="module")
def shots() -> tuple[np.ndarray, np.ndarray]:
    return render_shots_with_boxes(
        COLOURS, SHAPES, BACKGROUNDS, seed=3, size=64, placement=ANYWHERE
    )


def _elsewhere(box: np.ndarray) -> tuple[float, ...]:
    """A box of the same size on the other side of the frame."""
    x0, y0, x1, y1 = (float(v) for v in box)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    dx = (0.5 - cx) * 2 if abs(cx - 0.5) > 0.2 else 0.5 * (1 if cx < 0.5 else -1)
    dy = 0.0 if abs(cx - 0.5) > 0.2 else (0.5 - cy)
    shifted = [x0 + dx, y0 + dy, x1 + dx, y1 + dy]
    return tuple(min(max(v, 0.0), 1.0) for v in shifted)


def test_a_product_in_its_box_passes_and_the_same_box_elsewhere_fails(shots):
    images, boxes = shots
    inside = [checks.inside_box(image, box) for image, box in zip(images, boxes, strict=True)]
    outside = [checks.inside_box(i, _elsewhere(b)) for i, b in zip(images, boxes, strict=True)]
    assert sum(r.passed for r in inside) >= 0.9 * len(images), [r.reason for r in inside]
    assert sum(not r.passed for r in outside) >= 0.9 * len(images), [r.reason for r in outside]
    assert "in the box" in inside[0].reason and inside[0].value >= checks.INSIDE_BOX_SHARE


def test_nothing_standing_out_fails_and_no_plain_backdrop_is_not_judged():
    blank = np.full((64, 64, 3), 240, dtype=np.uint8)
    assert not checks.inside_box(blank, (0.1, 0.1, 0.5, 0.5)).passed
    busy = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    result = checks.inside_box(busy, (0.1, 0.1, 0.5, 0.5))
    assert result.passed and result.confidence == 0.0


def test_a_question_means_its_own_box_else_the_layout_box_it_numbers_else_the_first():
    layout = ((0.0, 0.0, 0.5, 0.5), (0.5, 0.5, 1.0, 1.0))
    own = Question("q1", "Is it there?", "check", check="inside_box", box=(0.2, 0.2, 0.4, 0.4))
    assert question_box(own, layout) == (0.2, 0.2, 0.4, 0.4)
    second = Question("q1", "Is the product inside box 2?", "check", check="inside_box")
    assert question_box(second, layout) == layout[1]
    first = Question("q1", "Is the product where the layout says?", "check", check="inside_box")
    assert question_box(first, layout) == layout[0]
    assert question_box(second, layout[:1]) is None


def test_the_check_judge_answers_inside_box_questions_from_the_job_layout(shots):
    images, boxes = shots
    judge = CheckJudge()
    question = Question("q1", "Is the product inside box 1?", "check", check="inside_box")
    judged = [
        JudgedImage(pixels=images[0], png=b"", prompt="", layout=(tuple(boxes[0]),)),
        JudgedImage(pixels=images[0], png=b"", prompt="", layout=(_elsewhere(boxes[0]),)),
        JudgedImage(pixels=images[0], png=b"", prompt=""),
    ]
    answers = [found[0] for found in judge.answer(judged, [question])]
    assert [a.answer for a in answers] == [True, False, None]
    assert answers[2].error == "no_box"


def test_a_rubric_item_may_carry_a_box_for_inside_box_only():
    item = {"question": "Is it on the left?", "judge": "check", "check": "inside_box"}
    cleaned = rubric_clean([item | {"box": [0, 0.2, 0.5, 1]}])
    assert cleaned[0]["box"] == [0.0, 0.2, 0.5, 1.0]
    with pytest.raises(Exception, match="Question 1: box .* needs x0 < x1"):
        rubric_clean([item | {"box": [0.6, 0, 0.5, 1]}])
    with pytest.raises(Exception, match="only for check 'inside_box'"):
        rubric_clean([item | {"check": "colour", "box": [0, 0, 1, 1]}])
