"""The quality gate's judges behind one small interface (Django-free).

A rubric is a list of yes/no `Question`s, each answered by one judge: the built-in image checks
(``check``, no model), the safety detector (``safety``), a CLIP model (``clip``) or a VLM behind an
OpenAI-compatible endpoint (``vlm``). A judge gets the questions addressed to it and the
`JudgedImage`s of one job at once (a check compares the images of a job, a VLM may batch), and
returns per image one `Answer` per question, in order: yes or no with a confidence and a reason a
marketer can read, or ``answer=None`` with an ``error`` when it could not judge (a timeout, a model
that is not configured). A judge never raises for a bad image or a failing peer: the gate records
the error on the image and goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

JUDGE_NAMES = ("check", "safety", "clip", "vlm")


@dataclass(frozen=True)
class Question:
    """One yes/no question of a rubric, with its template variables already filled in.

    ``key`` is stable within the rubric (``q1``, ``q2``… or a default check's name); ``check`` names
    the built-in check that answers a ``check`` question (``colour``, ``backdrop``, ``subject``…).
    A ``required`` question fails the image whatever the score (the default defect checks, safety).
    """

    key: str
    text: str
    judge: str
    expected: bool = True
    weight: float = 1.0
    check: str = ""
    required: bool = False
    box: tuple[float, float, float, float] | None = None  # for check "inside_box"


@dataclass(frozen=True)
class Answer:
    """A judge's answer to one question about one image (``answer=None``: not judged)."""

    key: str
    judge: str
    answer: bool | None
    confidence: float
    reason: str
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class JudgedImage:
    """What a judge sees: the pixels (H, W, 3 uint8), the PNG as stored, the prompt it was made
    from and the (width, height) the job asked for."""

    pixels: np.ndarray
    png: bytes
    prompt: str
    expected_size: tuple[int, int] | None = None
    # The job's layout boxes (x0, y0, x1, y1), in order: what "box N" in a question refers to.
    layout: tuple[tuple[float, float, float, float], ...] = ()


class Judge(Protocol):
    name: str

    def answer(
        self, images: Sequence[JudgedImage], questions: Sequence[Question]
    ) -> list[list[Answer]]:
        """For each image (the images of one job), one `Answer` per question, in order; never
        raises for an image or a peer's failure."""
        ...


def unanswered(
    questions: Sequence[Question], *, judge: str, error: str, reason: str
) -> list[Answer]:
    """Every question left unanswered for one cause (a peer that failed, a judge that is off)."""
    return [
        Answer(key=q.key, judge=judge, answer=None, confidence=0.0, reason=reason, error=error)
        for q in questions
    ]
