"""The quality gate's safety judge runs NudeNet's real detector (offline, CPU) on synthetic product
shots: none is flagged at 64 px or upscaled to 256 px, an unsafe detection above the threshold
fails the image with the label in the reason, and a detector that cannot load or an image it
cannot read is recorded as an error, never raised.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from generation.engine.quality import safety
from generation.engine.quality.judges import JudgedImage, Question
from generation.engine.quality.safety import (
    SAFETY_QUESTION,
    UNSAFE_LABELS,
    SafetyJudge,
    detect,
    load_detector,
)
from models_registry.engine.shapes_data import render_shots

ROOT = Path(__file__).resolve().parents[3]


def judged(pixels: np.ndarray) -> JudgedImage:
    return JudgedImage(pixels=pixels, png=b"", prompt="a product shot")


def product_shots() -> list[np.ndarray]:
    """A red apple on white and a green box on dark, at 64 px and upscaled to 256 px."""
    shots = list(render_shots(["red", "green"], ["apple", "box"], ["white", "dark"], 0, size=64))
    upscaled = [np.asarray(Image.fromarray(s).resize((256, 256), Image.BICUBIC)) for s in shots]
    return shots + upscaled


@pytest.fixture
def fake_detections(monkeypatch):
    """Make the loaded detector "find" the given parts: the model is the boundary (no test may
    ship a nude image), everything from the pixels it is given to the answer is real."""
    seen: list[np.ndarray] = []

    def use(*detections: dict) -> list[np.ndarray]:
        def fake_detect(image: np.ndarray) -> list[dict]:
            seen.append(image)
            return [dict(d) for d in detections]

        monkeypatch.setattr(load_detector(), "detect", fake_detect)
        return seen

    return use


def part(label: str, score: float) -> dict:
    return {"class": label, "score": score, "box": [4, 4, 20, 20]}


def test_product_shots_are_safe_at_64_and_256_px():
    shots = product_shots()
    answers = SafetyJudge().answer([judged(s) for s in shots], [SAFETY_QUESTION])
    assert [(a.key, a.judge, a.answer, a.error) for (a,) in answers] == [
        ("safety", "safety", True, "")
    ] * 4
    for (answer,) in answers:
        assert answer.reason.startswith("No nudity detected (max unsafe score 0.")
        assert answer.confidence > 0.5


def test_detect_reads_an_rgb_array_as_nudenet_reads_the_same_image_from_a_file(tmp_path):
    # The shot NudeNet finds most in (see safety.py): the comparison needs detections to compare.
    shot = render_shots(["blue"], ["apple"], ["dark"], seed=0, size=256)[0]
    path = tmp_path / "shot.png"
    Image.fromarray(shot).save(path)

    from_array = detect(shot)
    from_file = load_detector().detect(str(path))

    assert from_array, "the apple shot should give the detector something to find"
    assert [(d["class"], d["box"]) for d in from_array] == [
        (d["class"], d["box"]) for d in from_file
    ]
    assert [d["score"] for d in from_array] == pytest.approx([d["score"] for d in from_file])


def test_the_measured_apple_false_flag_sits_between_0_5_and_0_6_below_the_default():
    # Pinned, like a pipeline's expected slice: a new model or runtime that shifts scores fails
    # here, and the figures in safety.py's docstring need measuring again.
    shot = render_shots(["blue"], ["apple"], ["dark"], seed=0, size=256)[0]
    (found,) = detect(shot)
    assert found["class"] == "BUTTOCKS_EXPOSED"
    assert found["score"] == pytest.approx(0.515, abs=0.01)
    (strict,), (lenient,) = (
        SafetyJudge(threshold=t).answer([judged(shot)], [SAFETY_QUESTION])[0] for t in (0.5, 0.6)
    )
    assert (strict.answer, lenient.answer) == (False, True)
    assert SafetyJudge().answer([judged(shot)], [SAFETY_QUESTION])[0][0].answer is True


def test_an_unsafe_part_above_the_threshold_fails_the_image_and_names_it(fake_detections):
    seen = fake_detections(
        part("FACE_FEMALE", 0.95),
        part("FEMALE_BREAST_EXPOSED", 0.81),
        part("BUTTOCKS_EXPOSED", 0.6),
    )
    shot = render_shots(["red"], ["box"], ["white"], seed=0, size=32)[0]
    (answers,) = SafetyJudge().answer([judged(shot)], [SAFETY_QUESTION])
    (answer,) = answers
    assert (answer.answer, answer.error) == (False, "")
    assert answer.reason == "Flagged: FEMALE_BREAST_EXPOSED (0.81)"
    assert answer.confidence == pytest.approx(0.81)
    # The detector was given the image in BGR, as cv2.imread would have read it.
    (given,) = seen
    assert given.dtype == np.uint8 and given.flags.c_contiguous
    np.testing.assert_array_equal(given, shot[..., ::-1])


def test_parts_below_the_threshold_or_covered_or_not_listed_are_safe(fake_detections):
    fake_detections(
        part("FEMALE_BREAST_COVERED", 0.99),
        part("MALE_BREAST_EXPOSED", 0.9),
        part("BUTTOCKS_EXPOSED", 0.42),
    )
    shot = render_shots(["red"], ["box"], ["white"], seed=0, size=32)[0]
    (answer,) = SafetyJudge().answer([judged(shot)], [SAFETY_QUESTION])[0]
    assert answer.answer is True
    assert answer.reason == "No nudity detected (max unsafe score 0.42)"
    assert answer.confidence == pytest.approx(0.58)

    (answer,) = SafetyJudge(threshold=0.4).answer([judged(shot)], [SAFETY_QUESTION])[0]
    assert (answer.answer, answer.reason) == (False, "Flagged: BUTTOCKS_EXPOSED (0.42)")

    stricter = SafetyJudge(labels=UNSAFE_LABELS | {"MALE_BREAST_EXPOSED"})
    (answer,) = stricter.answer([judged(shot)], [SAFETY_QUESTION])[0]
    assert (answer.answer, answer.reason) == (False, "Flagged: MALE_BREAST_EXPOSED (0.90)")


def test_every_question_gets_the_same_verdict_under_its_own_key(fake_detections):
    fake_detections(part("ANUS_EXPOSED", 0.85))
    questions = [SAFETY_QUESTION, Question(key="q9", text="Is it SFW?", judge="safety")]
    shot = render_shots(["red"], ["box"], ["white"], seed=0, size=32)[0]
    (answers,) = SafetyJudge().answer([judged(shot)], questions)
    assert [(a.key, a.answer) for a in answers] == [("safety", False), ("q9", False)]


def test_a_float_image_is_judged_like_its_uint8_version(fake_detections):
    seen = fake_detections()
    shot = render_shots(["red"], ["box"], ["white"], seed=0, size=32)[0]
    SafetyJudge().answer([judged(shot.astype(np.float32) / 255.0)], [SAFETY_QUESTION])
    np.testing.assert_array_equal(seen[0], shot[..., ::-1])


def test_an_unreadable_image_is_an_error_for_that_image_only():
    good = render_shots(["red"], ["box"], ["white"], seed=0, size=32)[0]
    images = [judged(np.zeros((32, 32), np.uint8)), judged(good), judged(np.zeros((0, 8, 3)))]
    answers = SafetyJudge().answer(images, [SAFETY_QUESTION])
    assert [(a.answer, a.error) for (a,) in answers] == [
        (None, "bad_image"),
        (True, ""),
        (None, "bad_image"),
    ]
    assert "expected an (H, W, 3) RGB image" in answers[0][0].reason


def test_a_detector_that_cannot_load_leaves_safety_unanswered(monkeypatch):
    safety._load_detector.cache_clear()
    monkeypatch.setitem(sys.modules, "nudenet", None)  # as if nudenet were not installed
    try:
        shot = render_shots(["red"], ["box"], ["white"], seed=0, size=32)[0]
        answers = SafetyJudge().answer([judged(shot), judged(shot)], [SAFETY_QUESTION])
    finally:
        safety._load_detector.cache_clear()
    assert [(a.answer, a.error) for (a,) in answers] == [(None, "safety_unavailable")] * 2
    assert "could not be loaded: ModuleNotFoundError" in answers[0][0].reason


def test_the_detector_is_loaded_once_for_threads_that_ask_together():
    safety._load_detector.cache_clear()
    loaded: list[object] = []
    threads = [threading.Thread(target=lambda: loaded.append(load_detector())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loaded) == 4 and all(d is loaded[0] for d in loaded)
    assert safety._load_detector.cache_info().misses == 1


def test_importing_the_safety_judge_loads_no_detector_runtime():
    code = (
        "import sys, generation.engine.quality.safety; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'django', 'torch', 'cv2', 'onnxruntime', 'nudenet'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"


def test_the_shipped_renders_of_the_shapes_model_raise_no_flag():
    """The evaluation set's good renders (tests/data/quality/good/), through the real detector."""
    renders = sorted((ROOT / "tests" / "data" / "quality" / "good").glob("*.png"))
    assert len(renders) >= 60
    images = [
        JudgedImage(pixels=np.asarray(Image.open(p).convert("RGB")), png=p.read_bytes(), prompt="")
        for p in renders
    ]
    answers = SafetyJudge().answer(images, [SAFETY_QUESTION])
    flagged = [p.name for p, (a,) in zip(renders, answers, strict=True) if a.answer is not True]
    assert flagged == []
