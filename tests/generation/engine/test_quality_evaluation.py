"""The check judge on the shipped evaluation set (tests/data/quality/, renders of the shapes model
and their defects; scripts/make_quality_set.py): it catches the defects the built-in checks
cover and leaves the good renders alone, and the scoring counts what it should."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from generation.engine.quality.evaluation import (
    QUESTION_KEYS,
    LabelledImage,
    evaluate,
    evaluate_checks,
    load_set,
)

ROOT = Path(__file__).resolve().parents[3]
SET_DIR = ROOT / "tests" / "data" / "quality"


@pytest.fixture(scope="module")
def report():  # type: ignore[no-untyped-def]
    return evaluate_checks(SET_DIR)


def test_the_default_checks_catch_the_defects_they_cover_and_spare_good_renders(report):
    default = report.default_checks
    assert default.precision >= 0.95
    assert default.recall >= 0.90
    for key in ("black_or_nan", "blank_or_flat", "exposure", "blur", "noise", "wrong_size"):
        assert report.scores[key].recall >= 0.90, key
        assert report.scores[key].false_flags == 0, key
    assert report.scores["near_duplicate"].recall >= 0.90


def test_every_question_together_keeps_precision_and_recall(report):
    overall = report.overall
    assert overall.precision >= 0.95
    assert overall.recall >= 0.90
    for kind in ("colour", "backdrop", "subject"):
        assert report.scores[kind].recall >= 0.90, kind
    assert report.scores["colour"].false_flags == report.scores["backdrop"].false_flags == 0


def test_good_renders_are_flagged_only_for_touching_the_edge_and_once_at_most(report):
    # Measured: 2 of 67 good renders, both yellow bottles on white that the model draws from the
    # top edge down (their caps do touch it); on the 526 calibration renders 21 (4%) did.
    assert report.good == 67
    assert report.most_flags_on_a_good_image <= 1
    assert {key for keys in report.flagged_good.values() for key in keys} <= {"subject"}
    assert len(report.flagged_good) <= 3


def test_the_set_is_small_labelled_and_covers_every_prompt():
    manifest = json.loads((SET_DIR / "manifest.json").read_text())["images"]
    assert sum(path.stat().st_size for path in SET_DIR.rglob("*") if path.is_file()) < 2_000_000
    files = [row["file"] for row in manifest]
    assert len(files) == len(set(files))
    assert all((SET_DIR / file).is_file() for file in files)
    assert all(file.endswith(".png") for file in files)
    classes = Counter(row["defect"] for row in manifest)
    expected_classes = {
        "good", "blank", "black", "noise", "blurred", "overexposed", "underexposed",
        "wrong_size", "duplicate", "wrong_colour", "cropped", "busy_backdrop", "wrong_backdrop",
    }  # fmt: skip
    assert set(classes) == expected_classes
    assert min(classes.values()) >= 16
    good = [row for row in manifest if row["defect"] == "good"]
    assert {(row["colour"], row["background"]) for row in good} == {
        (colour, background)
        for colour in ("red", "orange", "yellow", "green", "blue", "purple")
        for background in ("white", "dark")
    }
    seen: dict[str, list[str]] = {}
    for row in manifest:
        if row["defect"] == "good":
            assert row["target"] == "" and row["origin"] == "render"
        else:
            assert row["target"] in QUESTION_KEYS
        if row["defect"] == "duplicate":  # repeats an earlier image of its own job
            assert row["duplicates"] in seen.get(row["job"], [])
        seen.setdefault(row["job"], []).append(row["file"])


def test_load_set_reads_pixels_and_labels():
    images = load_set(SET_DIR)
    first = images[0]
    assert first.file == "good/red-apple-white-3000.png"
    assert first.pixels.shape == (32, 32, 3) and first.pixels.dtype == np.uint8
    assert first.expected_size == (32, 32) and first.good
    wrong_size = next(image for image in images if image.defect == "wrong_size")
    assert wrong_size.pixels.shape == (24, 32, 3)


def _labelled(pixels: np.ndarray, *, file: str, defect: str = "good", target: str = "",
              job: str = "") -> LabelledImage:  # fmt: skip
    return LabelledImage(
        file=file,
        job=job or file,
        prompt="a red apple on a white background",
        colour="red",
        background="white",
        defect=defect,
        target=target,
        pixels=pixels,
        expected_size=(32, 32),
    )


def test_a_flagged_good_image_is_a_false_positive_and_a_passed_defect_a_miss():
    good = load_set(SET_DIR)[0]
    images = [
        _labelled(np.zeros((32, 32, 3), np.uint8), file="black-but-called-good.png"),
        _labelled(
            good.pixels, file="sharp-but-called-blurred.png", defect="blurred", target="blur"
        ),  # fmt: skip
        _labelled(
            np.zeros((32, 32, 3), np.uint8), file="black.png", defect="black", target="black_or_nan"
        ),  # fmt: skip
    ]
    report = evaluate(images)
    assert report.scores["black_or_nan"].false_flags == 1
    assert report.scores["black_or_nan"].caught == 1
    assert report.scores["blur"].missed == 1 and report.scores["blur"].recall == 0.0
    # The black defect is also under-exposed: counted apart, not as a catch of exposure.
    assert report.scores["exposure"].also_flags == {"black": 1}
    assert report.scores["exposure"].caught == 0
    assert report.missed == [("sharp-but-called-blurred.png", "blurred", [])]
    text = report.format_report()
    assert "black-but-called-good.png: black_or_nan" in text
    assert "sharp-but-called-blurred.png (blurred): flagged by nothing" in text


def test_a_target_that_is_no_question_is_refused():
    image = _labelled(np.zeros((32, 32, 3), np.uint8), file="x.png", defect="odd", target="odd")
    with pytest.raises(ValueError, match=r"Targets \['odd'\] are no question of the set"):
        evaluate([image])


def test_the_report_prints_a_line_per_question_and_the_totals(report):
    text = report.format_report()
    assert text.startswith("271 images: 67 good, 204 defects (black 17, blank 17, ")
    for key in (*QUESTION_KEYS, "default checks", "rubric kinds", "overall"):
        assert any(line.startswith(f"{key} ") for line in text.splitlines()), key
    assert "Good images flagged: 2 of 67" in text


def test_the_evaluation_imports_neither_django_nor_torch():
    code = (
        "import sys, generation.engine.quality.evaluation; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'torch', 'cv2'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"
