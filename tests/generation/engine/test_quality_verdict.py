"""The gate's verdict (required questions, weighted score, what is not judged, fail-closed
safety) and the rule-based refinement of a prompt after failed questions."""

from __future__ import annotations

from generation.engine.quality.gate import best_attempt, verdict
from generation.engine.quality.judges import Answer, Question
from generation.engine.quality.refine import SEED_STRIDE, refine_by_rules

BLUR = Question(key="blur", text="Is the image sharp?", judge="check", check="blur", required=True)
SAFE = Question(key="safety", text="Is the image safe for work?", judge="safety", required=True)
RED = Question(key="t1", text="Is the product red?", judge="check", check="colour", weight=2)
BOX = Question(key="t2", text="Is it a box?", judge="vlm")
NOT_DARK = Question(
    key="t3", text="Is the background dark?", judge="check", check="backdrop", expected=False
)


def said(q: Question, answer: bool | None, error: str = "") -> Answer:
    return Answer(
        key=q.key, judge=q.judge, answer=answer, confidence=0.9, reason=f"{q.key}?", error=error
    )


def test_the_score_is_the_weight_answered_as_expected_over_the_weight_answered():
    questions = [BLUR, SAFE, RED, BOX, NOT_DARK]
    answers = [
        said(BLUR, True),
        said(SAFE, True),
        said(RED, True),
        said(BOX, False),
        said(NOT_DARK, False),
    ]
    v = verdict(questions, answers, threshold=0.75)
    assert v.score == 3 / 4 and v.passed  # red (2) + not dark (1) of 4
    assert [q.key for q, _ in v.failed] == ["t2"]
    assert not verdict(questions, answers, threshold=0.8).passed


def test_a_required_failure_fails_whatever_the_score():
    v = verdict([BLUR, RED], [said(BLUR, False), said(RED, True)], threshold=0.5)
    assert not v.passed and v.score == 1.0 and v.reasons == ["blur?"]


def test_an_unjudged_scored_question_is_left_out_and_reported():
    v = verdict(
        [BLUR, RED, BOX],
        [said(BLUR, True), said(RED, True), said(BOX, None, "timeout")],
        threshold=1.0,
    )
    assert v.passed and v.score == 1.0
    assert v.reasons == ["Not judged (timeout): Is it a box?"]


def test_safety_that_could_not_judge_fails_closed_and_marks_the_image_unsafe():
    v = verdict([SAFE], [said(SAFE, None, "safety_unavailable")], threshold=0.5)
    assert not v.passed and v.unsafe and v.score is None
    scores = v.as_scores()
    assert scores["unsafe"] is True and scores["failed"] == ["safety"]
    assert scores["answers"][0]["error"] == "safety_unavailable"


def test_no_rubric_means_no_score_and_a_pass_on_the_required_questions():
    v = verdict([BLUR, SAFE], [said(BLUR, True), said(SAFE, True)], threshold=1.0)
    assert v.passed and v.score is None and not v.unsafe


def test_the_best_attempt_is_the_highest_scoring_pass_then_the_earliest():
    ok = verdict([RED, BOX], [said(RED, True), said(BOX, False)], threshold=0.5)
    full = verdict([RED, BOX], [said(RED, True), said(BOX, True)], threshold=0.5)
    bad = verdict([BLUR], [said(BLUR, False)], threshold=0.5)
    assert best_attempt([("a", ok), ("b", full), ("c", full)]) == "b"
    assert best_attempt([("a", bad)]) is None


def test_rules_stress_the_colour_name_the_failure_raise_guidance_and_change_the_seed():
    failed = [(RED, said(RED, False)), (BLUR, said(BLUR, False))]
    r = refine_by_rules(
        prompt="a red box on a white background",
        negative_prompt="text",
        cfg_scale=5.0,
        seed=7,
        attempt=1,
        failed=failed,
        max_cfg_scale=20.0,
    )
    assert r.prompt == "a red box on a white background, red"
    assert r.negative_prompt == "text, wrong colour, blurry, out of focus"
    assert (r.cfg_scale, r.seed, r.by) == (6.5, 7 + SEED_STRIDE, "rules")
    again = refine_by_rules(
        prompt=r.prompt,
        negative_prompt=r.negative_prompt,
        cfg_scale=19.5,
        seed=r.seed,
        attempt=2,
        failed=failed,
        max_cfg_scale=20.0,
    )
    # Nothing is added twice, guidance stops at the model's bound.
    assert again.prompt == r.prompt and again.negative_prompt == r.negative_prompt
    assert again.cfg_scale == 20.0


def test_a_backdrop_colour_is_not_stressed_as_the_products():
    white = Question(key="c1", text="Is the background white?", judge="vlm")
    r = refine_by_rules(
        prompt="a red box",
        negative_prompt="",
        cfg_scale=5,
        seed=0,
        attempt=1,
        failed=[(white, said(white, False))],
        max_cfg_scale=20,
    )
    assert r.prompt == "a red box"


def test_a_judge_that_is_off_is_in_the_answers_not_in_the_reasons():
    v = verdict([RED, BOX], [said(RED, True), said(BOX, None, "judge_off")], threshold=1.0)
    assert v.passed and v.reasons == []
    assert v.as_scores()["answers"][1]["error"] == "judge_off"
