"""The quality gate's CLIP judge on a tiny random CLIP saved to a local directory (nothing is
downloaded): it answers every question with a cosine similarity in [-1, 1], the same way twice,
its threshold decides the answer, and a model it cannot load is recorded, never raised.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from generation.engine.quality import clip
from generation.engine.quality.clip import ClipJudge, load_clip, statement_for
from generation.engine.quality.judges import JudgedImage, Question
from models_registry.engine.shapes_data import render_shots
from tests.clip_fixture import build_tiny_clip

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[3]
QUESTIONS = [
    Question(key="q1", text="Is the product red?", judge="clip"),
    Question(key="q2", text="Is there a green box?", judge="clip"),
    Question(key="q3", text="Does the bottle have a cap?", judge="clip"),
]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> str:
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


def shots(size: int = 32) -> list[JudgedImage]:
    pixels = render_shots(["red", "green"], ["apple", "box"], ["white", "dark"], 0, size=size)
    return [JudgedImage(pixels=p, png=b"", prompt="a product shot") for p in pixels]


def test_clip_judge_answers_every_question_with_a_similarity_the_same_way_twice(tiny_clip):
    judge = ClipJudge(tiny_clip, threshold=0.0)
    first = judge.answer(shots(), QUESTIONS)
    second = judge.answer(shots(), QUESTIONS)

    assert first == second
    assert [[a.key for a in row] for row in first] == [["q1", "q2", "q3"]] * 2
    for image, row in zip(shots(), first, strict=True):
        scores = judge.similarity(image.pixels, [statement_for(q.text) for q in QUESTIONS])
        for answer, score in zip(row, scores, strict=True):
            assert (answer.judge, answer.error) == ("clip", "")
            assert -1.0 <= score <= 1.0
            assert answer.answer is (score >= 0.0)
            assert f"is {score:.3f}" in answer.reason
            assert 0.5 <= answer.confidence <= 1.0
    assert 'Similarity to "a photo where the product is red"' in first[0][0].reason


def test_similarity_is_clips_cosine_of_image_and_text(tiny_clip):
    model, processor = load_clip(tiny_clip)
    image = shots()[0].pixels
    texts = ["a red apple", "a green box on a dark background"]
    with torch.inference_mode():
        out = model(**processor(text=texts, images=[image], return_tensors="pt", padding=True))
        expected = (out.logits_per_image / model.logit_scale.exp())[0].tolist()

    scores = ClipJudge(tiny_clip).similarity(image, texts)

    assert scores == pytest.approx(expected, abs=1e-5)
    assert scores[0] != pytest.approx(scores[1], abs=1e-4)  # the text reaches the model


def test_the_threshold_decides_the_answer(tiny_clip):
    everything = ClipJudge(tiny_clip, threshold=-1.0).answer(shots(), QUESTIONS)
    nothing = ClipJudge(tiny_clip, threshold=1.0).answer(shots(), QUESTIONS)
    assert all(a.answer is True for row in everything for a in row)
    assert all(a.answer is False for row in nothing for a in row)


def test_a_missing_model_is_clip_unavailable_for_every_answer(tmp_path):
    missing = tmp_path / "no-such-clip"
    answers = ClipJudge(str(missing)).answer(shots(), QUESTIONS)
    assert [[(a.answer, a.error) for a in row] for row in answers] == [
        [(None, "clip_unavailable")] * 3
    ] * 2
    assert str(missing) in answers[0][0].reason


def test_an_unreadable_image_is_an_error_for_that_image_only(tiny_clip):
    images = [JudgedImage(pixels=np.zeros((32, 32), np.uint8), png=b"", prompt=""), shots()[0]]
    bad, good = ClipJudge(tiny_clip).answer(images, QUESTIONS)
    assert {(a.answer, a.error) for a in bad} == {(None, "bad_image")}
    assert all(a.error == "" and a.answer is not None for a in good)


def test_the_model_is_loaded_once_per_path(tiny_clip):
    assert load_clip(tiny_clip) is load_clip(tiny_clip)
    before = clip._load_clip.cache_info().misses
    ClipJudge(tiny_clip).answer(shots(), QUESTIONS)
    assert clip._load_clip.cache_info().misses == before


@pytest.mark.parametrize(
    ("question", "statement"),
    [
        ("Is the product red?", "a photo where the product is red"),
        ("Are the apples green?", "a photo where the apples are green"),
        ("Is there a red apple?", "a photo of a red apple"),
        ("Is it a   bottle ?", "a photo of a bottle"),
        ("Does the bottle have a cap?", "a photo where the bottle have a cap"),
        ("A white background?", "a white background"),
    ],
)
def test_questions_become_captions_by_a_simple_rule(question, statement):
    assert statement_for(question) == statement


def test_importing_the_clip_judge_loads_neither_torch_nor_transformers():
    code = (
        "import sys, generation.engine.quality.clip; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'django', 'torch', 'transformers'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"
