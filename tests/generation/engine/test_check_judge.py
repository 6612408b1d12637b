"""The check judge answers the default defect questions and the rubric kinds (colour, backdrop,
subject) from the image checks: yes on good renders of the shapes model, no on their defects
(tests/data/quality/), and a named error for a question it cannot answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from generation.engine.quality.check_judge import (
    CHECK_KINDS,
    DEFAULT_CHECK_QUESTIONS,
    CheckJudge,
    backdrop_tones_in,
    subject_colour_in,
)
from generation.engine.quality.evaluation import LabelledImage, load_set
from generation.engine.quality.judges import JudgedImage, Question

SET_DIR = Path(__file__).resolve().parents[3] / "tests" / "data" / "quality"


@pytest.fixture(scope="module")
def shipped() -> dict[str, LabelledImage]:
    return {image.file: image for image in load_set(SET_DIR)}


def judged(image: LabelledImage | np.ndarray, size: tuple[int, int] | None = (32, 32)):  # type: ignore[no-untyped-def]
    pixels = image.pixels if isinstance(image, LabelledImage) else image
    return JudgedImage(pixels=pixels, png=b"", prompt="", expected_size=size)


def ask(kind: str, text: str, key: str = "q1") -> Question:
    return Question(key=key, text=text, judge="check", check=kind)


def answers_of(images: list[JudgedImage], question: Question) -> list[bool | None]:
    return [answers[0].answer for answers in CheckJudge().answer(images, [question])]


def test_the_default_questions_are_the_required_defect_checks():
    assert [q.key for q in DEFAULT_CHECK_QUESTIONS] == [
        "black_or_nan",
        "blank_or_flat",
        "exposure",
        "blur",
        "noise",
        "wrong_size",
        "near_duplicate",
    ]
    assert all(
        q.required and q.judge == "check" and q.check == q.key for q in DEFAULT_CHECK_QUESTIONS
    )
    assert DEFAULT_CHECK_QUESTIONS[0].text == "Is the image free of black or NaN pixels?"
    assert CHECK_KINDS == ("colour", "backdrop", "subject", "inside_box")


def test_good_renders_of_one_prompt_pass_every_default_question(shipped):
    job = [shipped["good/blue-bottle-dark-3000.png"], shipped["good/blue-bottle-dark-3001.png"]]
    answers = CheckJudge().answer([judged(image) for image in job], DEFAULT_CHECK_QUESTIONS)
    for image_answers in answers:
        assert [a.key for a in image_answers] == [q.key for q in DEFAULT_CHECK_QUESTIONS]
        assert all(a.answer is True and a.judge == "check" and not a.error for a in image_answers)
        assert all(0.5 <= a.confidence <= 1.0 for a in image_answers)


@pytest.mark.parametrize(
    ("file", "key", "reason"),
    [
        ("defect/black-00-red-apple-white.png", "black_or_nan", "The image is black"),
        ("defect/blank-00-red-apple-white.png", "blank_or_flat", "The image is blank"),
        ("defect/noise-00-red-apple-dark.png", "noise", "The image looks like random noise"),
        ("defect/blurred-00-red-apple-dark.png", "blur", "Blurred: edges are soft"),
        ("defect/overexposed-00-red-apple-white.png", "exposure", "Over-exposed: "),
        ("defect/underexposed-00-red-apple-white.png", "exposure", "Under-exposed: "),
        ("defect/wrong_size-00-red-apple-dark.png", "wrong_size", "Wrong size: the image is 32×24"),
    ],
)
def test_each_derived_defect_fails_its_default_question(shipped, file, key, reason):
    (answers,) = CheckJudge().answer([judged(shipped[file])], DEFAULT_CHECK_QUESTIONS)
    answer = next(a for a in answers if a.key == key)
    assert answer.answer is False
    assert answer.reason.startswith(reason)


def test_the_later_of_a_job_and_its_copy_fails_as_a_near_duplicate(shipped):
    duplicate = shipped["defect/duplicate-00-red-apple-dark.png"]
    original = shipped[f"good/{duplicate.job}-3000.png"]
    question = next(q for q in DEFAULT_CHECK_QUESTIONS if q.key == "near_duplicate")
    assert answers_of([judged(original), judged(duplicate)], question) == [True, False]
    # Judged alone, each image is distinct: duplicates are looked for among one call's images.
    assert answers_of([judged(duplicate)], question) == [True]


def test_the_size_is_not_judged_when_the_job_asked_for_none(shipped):
    question = next(q for q in DEFAULT_CHECK_QUESTIONS if q.key == "wrong_size")
    image = shipped["defect/wrong_size-00-red-apple-dark.png"]
    (answers,) = CheckJudge().answer([judged(image, size=None)], [question])
    assert answers[0].answer is True and answers[0].confidence == 0.0
    assert "asked for no particular size" in answers[0].reason


def test_the_colour_question_takes_its_colour_from_the_question(shipped):
    red = judged(shipped["good/red-apple-white-3000.png"])
    assert answers_of([red], ask("colour", "Is the product red?")) == [True]
    assert answers_of([red], ask("colour", "Is the product blue?")) == [False]
    # The backdrop's colour word is not the product's.
    assert answers_of([red], ask("colour", "Is it a red apple on a white background?")) == [True]
    assert answers_of([red], ask("colour", "Is it a blue apple on a red backdrop?")) == [False]


def test_the_colour_question_fails_a_wrong_colour_and_the_models_white_blob(shipped):
    rotated = shipped["defect/wrong_colour-00-red-apple-dark.png"]
    (answers,) = CheckJudge().answer([judged(rotated)], [ask("colour", "Is the product red?")])
    assert answers[0].answer is False
    assert answers[0].reason.startswith("Wrong colour: the subject looks ")
    blob = shipped["model/wrong_colour-purple-box-dark-3000.png"]
    (answers,) = CheckJudge().answer([judged(blob)], [ask("colour", "Is the box purple?")])
    assert answers[0].answer is False
    assert "looks white, not purple" in answers[0].reason


def test_a_colour_question_without_a_colour_is_not_judged(shipped):
    red = judged(shipped["good/red-apple-white-3000.png"])
    (answers,) = CheckJudge().answer([red], [ask("colour", "Is the product the right colour?")])
    assert answers[0].answer is None
    assert answers[0].error == "no_colour_in_question"
    assert "names no colour" in answers[0].reason


@pytest.mark.parametrize(
    ("text", "on_white", "on_dark"),
    [
        ("Is the background plain and light?", True, False),
        ("Is the background white?", True, False),
        ("Is the background dark?", False, True),
        ("Is the product on a plain black backdrop?", False, True),
        ("Is the background plain?", True, True),
    ],
)
def test_the_backdrop_question_checks_plainness_and_the_tone_named(
    shipped, text, on_white, on_dark
):
    white = judged(shipped["good/green-box-white-3000.png"])
    dark = judged(shipped["good/green-box-dark-3000.png"])
    assert answers_of([white, dark], ask("backdrop", text)) == [on_white, on_dark]


def test_a_busy_or_wrong_backdrop_fails_the_backdrop_question(shipped):
    busy = shipped["defect/busy_backdrop-00-red-apple-white.png"]
    (answers,) = CheckJudge().answer([judged(busy)], [ask("backdrop", "Is the background plain?")])
    assert answers[0].answer is False
    assert answers[0].reason.startswith("The background is not plain: only ")
    wrong = shipped["defect/wrong_backdrop-00-red-apple-dark.png"]  # a white render, asked dark
    assert answers_of([judged(wrong)], ask("backdrop", "Is the background dark?")) == [False]


def test_the_subject_question_passes_a_whole_product_and_fails_a_cut_or_missing_one(shipped):
    question = ask("subject", "Is the product centred and whole?")
    good = judged(shipped["good/red-apple-white-3000.png"])
    cut = judged(shipped["defect/cropped-00-red-apple-white.png"])
    blank = judged(shipped["defect/blank-00-red-apple-white.png"])
    results = CheckJudge().answer([good, cut, blank], [question])
    assert [answers[0].answer for answers in results] == [True, False, False]
    assert results[1][0].reason.startswith("The subject is cut off at the top edge")
    assert results[2][0].reason.startswith("No clear subject: ")


def test_subject_cropped_is_a_check_of_its_own_but_no_default():
    assert "subject_cropped" not in {q.check for q in DEFAULT_CHECK_QUESTIONS}
    flat = np.full((32, 32, 3), 240, np.uint8)
    assert answers_of([judged(flat)], ask("subject_cropped", "Is the product whole?")) == [True]


def test_an_unknown_check_or_another_judges_question_is_not_answered():
    image = judged(np.full((32, 32, 3), 128, np.uint8))
    unknown = ask("sparkle", "Does it sparkle?")
    foreign = Question(key="q2", text="Is it a red apple?", judge="clip")
    (answers,) = CheckJudge().answer([image], [unknown, foreign])
    assert [(a.key, a.answer, a.error) for a in answers] == [
        ("q1", None, "unknown_check"),
        ("q2", None, "not_a_check_question"),
    ]
    assert "No built-in check 'sparkle'; use one of black_or_nan" in answers[0].reason


def test_a_bad_image_is_reported_without_stopping_its_peers(shipped):
    good = judged(shipped["good/red-apple-white-3000.png"])
    bad = judged(np.zeros((32, 32), np.uint8))
    results = CheckJudge().answer([bad, good], DEFAULT_CHECK_QUESTIONS)
    assert all(a.answer is None and a.error == "bad_image" for a in results[0])
    assert "shape (H, W, 3)" in results[0][0].reason
    assert all(a.answer is True for a in results[1])


def test_a_nan_output_fails_as_black():
    decoded = np.full((32, 32, 3), 0.5, np.float32)
    decoded[:20] = np.nan
    (answers,) = CheckJudge().answer([judged(decoded)], DEFAULT_CHECK_QUESTIONS[:1])
    assert answers[0].answer is False and "NaN values" in answers[0].reason


@pytest.mark.parametrize(
    ("text", "colour", "tones"),
    [
        ("Is the product red?", "red", ["red"]),
        ("Is the red apple on a white background?", "red", ["white"]),
        ("Is the background plain and light?", None, ["light"]),
        ("Is the mug dark blue on a plain black studio backdrop?", "blue", ["black"]),
        ("Is the background white, with a green bottle in front?", "green", ["white"]),
        ("Is the bottle gray?", "grey", ["grey"]),
        ("Is the scarf violet on a light grey background?", "purple", ["light", "grey"]),
        ("Is the mug red, the background white?", "red", ["white"]),
    ],
)
def test_questions_are_read_for_the_subjects_colour_and_the_backdrops_tones(text, colour, tones):
    assert subject_colour_in(text) == colour
    assert backdrop_tones_in(text) == tones
