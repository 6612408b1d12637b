"""Rubrics: the yes/no questions the quality gate asks of an image, per template and per category.

A rubric item is ``{"question", "expected", "weight", "judge", "check"}``:

- ``question``: the text, with the template's ``{variables}`` ("Is the product {color}?");
- ``expected``: the answer a good image gets, ``"yes"`` (default) or ``"no"`` (stored as a bool);
- ``weight``: how much it counts toward the score, > 0 (default 1);
- ``judge``: who answers it — ``check`` (a built-in image check, no model), ``clip`` (a CLIP model)
  or ``vlm`` (a vision-language model behind an OpenAI-compatible endpoint);
- ``check``: for ``judge: check`` only, which check: ``colour``, ``backdrop``, ``subject`` or
  ``inside_box``;
- ``box``: for ``check: inside_box`` only, ``[x0, y0, x1, y1]`` relative to the frame; without it
  the question means the job layout's box it numbers ("inside box 2"), else the first.

A plain string is accepted as a question for the VLM expecting "yes" (how rubrics were written
before judges existed). One validator serves the API, the studio and the migration, so every
entry point refuses the same things with the same message naming the field.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError

from .engine.quality.check_judge import CHECK_KINDS

__all__ = ["CHECK_KINDS", "RUBRIC_JUDGES", "rubric_clean"]

RUBRIC_JUDGES = ("check", "clip", "vlm")
MAX_RUBRIC_QUESTIONS = 30
MAX_QUESTION_CHARS = 300
MAX_WEIGHT = 100.0
MAX_QUALITY_ATTEMPTS = 5
DEFAULT_PASS_THRESHOLD = 0.75  # PromptTemplate.pass_threshold's default too
DEFAULT_QUALITY_ATTEMPTS = 3
ITEM_KEYS = frozenset({"question", "expected", "weight", "judge", "check", "box"})
_YES = {"yes", "y", "true"}
_NO = {"no", "n", "false"}


def _expected(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _YES | _NO:
        return value.strip().lower() in _YES
    return None


def rubric_item_clean(item: Any, *, variables: frozenset[str] | None) -> dict[str, Any]:
    """One rubric item, normalized; ValueError saying what is wrong with it."""
    if isinstance(item, str):
        item = {"question": item}
    if not isinstance(item, Mapping):
        raise ValueError("must be a question (text) or an object with a 'question'.")
    unknown = sorted(set(item) - ITEM_KEYS)
    if unknown:
        raise ValueError(
            f"unknown field(s) {', '.join(unknown)}; use {', '.join(sorted(ITEM_KEYS))}."
        )
    question = item.get("question")
    if not isinstance(question, str) or not " ".join(question.split()):
        raise ValueError("the question is empty.")
    question = " ".join(question.split())
    if len(question) > MAX_QUESTION_CHARS:
        raise ValueError(f"the question is longer than {MAX_QUESTION_CHARS} characters.")
    names = _placeholders(question)
    if variables is not None and names - variables:
        missing = ", ".join(sorted(names - variables))
        raise ValueError(f"the question uses {{{missing}}}, which the template does not define.")
    expected = _expected(item.get("expected", "yes"))
    if expected is None:
        raise ValueError("expected must be 'yes' or 'no'.")
    weight = item.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise ValueError("weight must be a number.")
    if not 0 < float(weight) <= MAX_WEIGHT:
        raise ValueError(f"weight must be above 0 and at most {MAX_WEIGHT:g}.")
    judge = item.get("judge", "vlm")
    if judge not in RUBRIC_JUDGES:
        raise ValueError(f"unknown judge '{judge}'; use one of: {', '.join(RUBRIC_JUDGES)}.")
    check = item.get("check", "")
    if judge == "check" and check not in CHECK_KINDS:
        raise ValueError(
            f"judge 'check' needs a check, one of: {', '.join(CHECK_KINDS)} (got '{check}')."
        )
    if judge != "check" and check:
        raise ValueError(f"'check' is only for judge 'check' (this question's judge is {judge}).")
    cleaned = {
        "question": question,
        "expected": expected,
        "weight": float(weight),
        "judge": judge,
        "check": check,
    }
    if "box" in item:
        if check != "inside_box":
            raise ValueError("'box' is only for check 'inside_box'.")
        from .protocol import layout_clean

        try:
            cleaned["box"] = layout_clean([{"phrase": "box", "box": item["box"]}])[0]["box"]
        except ValueError as exc:
            raise ValueError(str(exc).replace("Box 1: box", "box", 1)) from None
    return cleaned


def _placeholders(text: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name}
    except ValueError as exc:
        raise ValueError(f"the question's braces are unbalanced ({exc}).") from None


def rubric_clean(
    value: Any, *, field: str = "rubric", variables: frozenset[str] | None = None
) -> list[dict[str, Any]]:
    """A whole rubric, normalized; ``ValidationError({field: ...})`` naming the question."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ValidationError({field: "Must be a list of questions."})
    if len(value) > MAX_RUBRIC_QUESTIONS:
        raise ValidationError({field: f"At most {MAX_RUBRIC_QUESTIONS} questions."})
    items = []
    for number, item in enumerate(value, start=1):
        try:
            items.append(rubric_item_clean(item, variables=variables))
        except ValueError as exc:
            raise ValidationError({field: f"Question {number}: {exc}"}) from None
    return items


def threshold_clean(value: Any, *, field: str = "pass_threshold") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError({field: "Must be a number between 0 and 1."})
    if not 0.0 <= float(value) <= 1.0:
        raise ValidationError({field: f"Must be between 0 and 1 (got {value})."})
    return float(value)


def max_attempts_clean(value: Any, *, field: str = "max_attempts") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError({field: "Must be a whole number."})
    if not 1 <= value <= MAX_QUALITY_ATTEMPTS:
        raise ValidationError({field: f"Must be between 1 and {MAX_QUALITY_ATTEMPTS}."})
    return value


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill_question(text: str, variables: Mapping[str, str]) -> str:
    """The question with the job's variables in (a variable the job lacks stays as written)."""
    return string.Formatter().vformat(text, (), _Blank(variables))
