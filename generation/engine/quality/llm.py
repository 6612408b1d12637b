"""The quality gate's text LLM, behind the same OpenAI-compatible `ChatClient` as the VLM judge
(Django-free): `refine_prompt` rewrites a prompt whose images failed rubric questions, and
`draft_rubric` drafts yes/no questions from a product description.

A model's JSON is read tolerantly (inside code fences or chatter) and then checked strictly: a
prompt that is empty or too long, or a rubric question with an unknown judge, never reaches a
generation job. Every failure — the endpoint's or the model's output — raises `LlmError`, whose
``kind`` is the `ChatError` kind or ``bad_response`` (no JSON) or ``invalid_output`` (JSON that
fails the checks).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .chat import ChatClient, ChatError, extract_json

logger = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 1000
MAX_QUESTION_CHARS = 300
MAX_RUBRIC_QUESTIONS = 12
RUBRIC_JUDGES = ("check", "clip", "vlm")
RUBRIC_CHECKS = ("colour", "backdrop", "subject")
MAX_WEIGHT = 10.0

REFINE_SYSTEM_PROMPT = (
    "You improve prompts for a text-to-image model that makes product photos. You are given a "
    "prompt, its negative prompt, and review questions the images made from it failed, each "
    "with what the reviewer saw. Rewrite the prompt (and the negative prompt) so that images "
    "made from it would pass every question. Keep the product and everything that already "
    "worked; change only what the failures call for. Reply with JSON only: "
    '{"prompt": "...", "negative_prompt": "...", "note": "one sentence on what you changed"}'
)
RUBRIC_SYSTEM_PROMPT = (
    "You write review rubrics for product photos made by a text-to-image model. Each rubric "
    "item is a yes/no question about one image, with the answer a good image gets. Reply with "
    "a JSON list only, 3 to 8 items, each "
    '{"question": "...?", "expected": "yes" or "no", "weight": 1.0, "judge": "vlm", '
    '"check": ""}. '
    'judge is "check" for a built-in pixel check (then "check" is one of "colour" — the product '
    'has the colour asked for, "backdrop" — the background is the one asked for, "subject" — '
    'the product is whole and in frame), "clip" for a question about what the image shows '
    'overall, or "vlm" for anything that needs a careful look. weight (0-10) is how much the '
    "question matters. Questions may use the template variables given, written as {name}."
)


class LlmError(Exception):
    """The LLM gave nothing usable: ``kind`` says why (a `ChatError` kind, ``bad_response`` or
    ``invalid_output``), the message what was wrong."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Refinement:
    """A rewritten prompt pair and a note, for the person reviewing it, on what changed."""

    prompt: str
    negative_prompt: str
    note: str


def _ask_json(client: ChatClient, system: str, user: str, *, max_tokens: int) -> Any:
    try:
        reply = client.complete(
            [{"role": "system", "content": system}, {"role": "user", "content": user}],
            max_tokens=max_tokens,
        )
    except ChatError as exc:
        raise LlmError(exc.kind, f"The LLM endpoint failed: {exc.message}") from exc
    value = extract_json(reply)
    if value is None:
        raise LlmError("bad_response", f"The LLM's reply holds no JSON: {reply[:120]!r}")
    return value


def _prompt_text(value: Any, field: str, *, allow_empty: bool) -> str:
    if not isinstance(value, str):
        raise LlmError("invalid_output", f"The LLM's {field} is not text: {value!r:.80}")
    text = " ".join(value.split())
    if not text and not allow_empty:
        raise LlmError("invalid_output", f"The LLM returned an empty {field}.")
    if len(text) > MAX_PROMPT_CHARS:
        raise LlmError(
            "invalid_output",
            f"The LLM's {field} is {len(text)} characters long; at most {MAX_PROMPT_CHARS} "
            "are allowed.",
        )
    return text


def refine_prompt(
    client: ChatClient,
    *,
    prompt: str,
    negative_prompt: str,
    failures: Sequence[tuple[str, str]],
) -> Refinement:
    """Ask the LLM to rewrite ``prompt`` so each failed question — (question text, the judge's
    reason) — would be answered as the rubric expects. The negative prompt may come back empty;
    the prompt may not, and neither may pass `MAX_PROMPT_CHARS`."""
    if not prompt.strip():
        raise ValueError("prompt must not be empty")
    if not failures:
        raise ValueError("failures must name at least one failed question to refine for")
    listed = "\n".join(
        f"{n}. {question} — reviewer saw: {reason}"
        for n, (question, reason) in enumerate(failures, 1)
    )
    user = (
        f"Prompt: {prompt}\nNegative prompt: {negative_prompt or '(none)'}\n"
        f"Failed review questions:\n{listed}"
    )
    value = _ask_json(client, REFINE_SYSTEM_PROMPT, user, max_tokens=600)
    if not isinstance(value, dict):
        raise LlmError("invalid_output", f"The LLM's JSON is not an object: {value!r:.120}")
    if "prompt" not in value:
        raise LlmError("invalid_output", 'The LLM\'s JSON has no "prompt".')
    new_prompt = _prompt_text(value["prompt"], "prompt", allow_empty=False)
    new_negative = _prompt_text(
        value.get("negative_prompt", negative_prompt), "negative_prompt", allow_empty=True
    )
    note = value.get("note")
    if not isinstance(note, str) or not note.strip():
        note = f"Rewritten for {len(failures)} failed question{'s' * (len(failures) > 1)}."
    return Refinement(prompt=new_prompt, negative_prompt=new_negative, note=note.strip()[:300])


def _yes_no(value: Any) -> str | None:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and value.strip().lower() in ("yes", "no"):
        return value.strip().lower()
    return None


def _rubric_item(item: Any, variables: Sequence[str]) -> dict[str, Any]:
    """One drafted question, checked and normalised; raises ValueError saying what is wrong."""
    if not isinstance(item, dict):
        raise ValueError(f"not an object: {item!r:.80}")
    question = item.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("no question text")
    question = " ".join(question.split())
    if len(question) > MAX_QUESTION_CHARS:
        raise ValueError(f"question is {len(question)} characters long (at most 300)")
    unknown = sorted(set(re.findall(r"\{(\w+)\}", question)) - set(variables))
    if unknown:
        raise ValueError(f"question uses unknown template variables {unknown}")
    expected = _yes_no(item.get("expected"))
    if expected is None:
        raise ValueError(f'expected must be "yes" or "no", got {item.get("expected")!r:.40}')
    weight = item.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise ValueError(f"weight must be a number, got {weight!r:.40}")
    if not 0 < weight <= MAX_WEIGHT:
        raise ValueError(f"weight must be in (0, {MAX_WEIGHT:g}], got {weight}")
    judge = item.get("judge")
    if judge not in RUBRIC_JUDGES:
        raise ValueError(f"judge must be one of {', '.join(RUBRIC_JUDGES)}, got {judge!r:.40}")
    check = item.get("check") or ""
    if judge == "check" and check not in RUBRIC_CHECKS:
        raise ValueError(f"check must be one of {', '.join(RUBRIC_CHECKS)}, got {check!r:.40}")
    return {
        "question": question,
        "expected": expected,
        "weight": float(weight),
        "judge": judge,
        "check": check if judge == "check" else "",
    }


def draft_rubric(
    client: ChatClient, *, description: str, variables: Sequence[str]
) -> list[dict[str, Any]]:
    """Yes/no questions for a rubric, drafted by the LLM from a product description.

    Each item is ``{"question", "expected": "yes"|"no", "weight", "judge", "check"}`` with
    ``judge`` in `RUBRIC_JUDGES` and, for a ``check``, ``check`` in `RUBRIC_CHECKS`. Items that
    fail those rules are dropped (and logged); when none is left, `LlmError` says why each went.
    A person reviews the draft before it is used, so dropping beats failing the whole draft.
    """
    if not description.strip():
        raise ValueError("description must not be empty")
    names = ", ".join(f"{{{name}}}" for name in variables) or "(none)"
    user = f"Product description: {description.strip()}\nTemplate variables: {names}"
    value = _ask_json(client, RUBRIC_SYSTEM_PROMPT, user, max_tokens=800)
    if isinstance(value, dict) and isinstance(value.get("questions"), list):
        value = value["questions"]  # {"questions": [...]}: a common wrapping
    if not isinstance(value, list):
        raise LlmError("invalid_output", f"The LLM's JSON is not a list: {json.dumps(value):.120}")
    items, problems = [], []
    for number, raw in enumerate(value, 1):
        try:
            item = _rubric_item(raw, variables)
        except ValueError as exc:
            problems.append(f"item {number}: {exc}")
            continue
        if len(items) == MAX_RUBRIC_QUESTIONS:
            problems.append(f"item {number}: more than {MAX_RUBRIC_QUESTIONS} questions")
            continue
        items.append(item)
    if not items:
        detail = "; ".join(problems) or "the list is empty"
        raise LlmError("invalid_output", f"The LLM drafted no usable question ({detail}).")
    if problems:
        logger.warning("Dropped drafted rubric questions: %s", "; ".join(problems))
    return items
