"""The gate's verdict on one image from its judges' answers, and what an image's ``scores`` hold.

Two kinds of question (see `judges.Question`):

- **required** ones (the default defect checks, safety) fail the image whenever they are not
  answered as expected, whatever the score. One a judge could not answer fails it too: the gate
  fails closed, so an image the safety detector never saw cannot reach review or a webhook;
- **scored** ones (a rubric's) add their weight to the score when answered as expected; the score
  is that weight over the weight of the questions that were answered, and the image passes at or
  above the rubric's threshold. A scored question left unanswered (a VLM that timed out) is
  reported and left out of the score, so one flaky peer does not reject every image.

An image with no scored question (no rubric) has no score; it passes on its required questions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .judges import Answer, Question

JUDGE_OFF = "judge_off"  # the error of a question whose judge is not enabled or configured


@dataclass(frozen=True)
class Verdict:
    passed: bool
    score: float | None
    threshold: float
    unsafe: bool
    failed: list[tuple[Question, Answer]]
    unjudged: list[tuple[Question, Answer]]
    answers: list[tuple[Question, Answer]]

    @property
    def reasons(self) -> list[str]:
        """What a reviewer reads: each failed question's reason, then what a judge failed to
        judge (a judge the organization has not turned on is in the answers, not here: it is a
        setting, not something wrong with the image)."""
        return [a.reason for _, a in self.failed] + [
            f"Not judged ({a.error or 'no answer'}): {q.text}"
            for q, a in self.unjudged
            if not q.required and a.error != JUDGE_OFF
        ]

    def as_scores(self) -> dict[str, Any]:
        """The ``GeneratedImage.scores`` document (JSON), read by the API, studio and review."""
        return {
            "passed": self.passed,
            "score": None if self.score is None else round(self.score, 4),
            "threshold": self.threshold,
            "unsafe": self.unsafe,
            "reasons": self.reasons,
            "failed": [q.key for q, _ in self.failed],
            "answers": [answer_record(q, a) for q, a in self.answers],
        }


def answer_record(question: Question, answer: Answer) -> dict[str, Any]:
    return {
        "key": question.key,
        "question": question.text,
        "judge": question.judge,
        "check": question.check,
        "expected": question.expected,
        "weight": question.weight,
        "required": question.required,
        "answer": answer.answer,
        "confidence": answer.confidence,
        "reason": answer.reason,
        "error": answer.error,
    }


def verdict(
    questions: Sequence[Question], answers: Sequence[Answer], *, threshold: float
) -> Verdict:
    """Judge one image: ``answers[i]`` answers ``questions[i]``."""
    if len(questions) != len(answers):
        raise ValueError(f"{len(questions)} questions but {len(answers)} answers.")
    pairs = list(zip(questions, answers, strict=True))
    failed = [(q, a) for q, a in pairs if a.answer is not None and a.answer != q.expected]
    unjudged = [(q, a) for q, a in pairs if a.answer is None]
    required_ok = all(a.answer == q.expected for q, a in pairs if q.required)
    # A required question nobody could answer fails the image: count it with the failures.
    failed += [(q, a) for q, a in unjudged if q.required]
    scored = [(q, a) for q, a in pairs if not q.required and a.answer is not None]
    total = sum(q.weight for q, _ in scored)
    score = sum(q.weight for q, a in scored if a.answer == q.expected) / total if total else None
    unsafe = any(q.judge == "safety" and a.answer is not True for q, a in pairs)
    passed = required_ok and (score is None or score >= threshold)
    return Verdict(
        passed=passed,
        score=score,
        threshold=threshold,
        unsafe=unsafe,
        failed=failed,
        unjudged=unjudged,
        answers=pairs,
    )


def best_attempt(candidates: Sequence[tuple[Any, Verdict]]) -> Any | None:
    """The best passing candidate (highest score, then the earliest), or None when none passed."""
    passing = [(i, c, v) for i, (c, v) in enumerate(candidates) if v.passed]
    if not passing:
        return None
    return max(passing, key=lambda t: (t[2].score if t[2].score is not None else 1.0, -t[0]))[1]
