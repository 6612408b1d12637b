"""The quality gate's VLM judge: asks a vision-language model behind an OpenAI-compatible endpoint
each rubric question about each image, and reads a yes or no out of its reply (Django-free).

Models do not keep to "answer yes or no": they bold the answer, prefix "Answer:", reply in JSON,
or reason first and conclude at the end. `parse_yes_no` reads all of those and refuses replies
that hedge ("yes and no", "I cannot tell") or contradict themselves, so the gate records the
question as unanswered rather than guess.

Confidence is fixed by where the answer was found, not by the model: 0.9 for a reply that leads
with yes or no (or a JSON answer), 0.7 for one concluded later in the text ("... so the answer is
yes"), which is more often a model talking itself into an answer. Logprobs would be better but
not every server returns them.

Questions are asked one at a time, in order. Once the endpoint itself fails (a timeout, no
connection, 429 or 5xx after the client's retries), the judge stops asking and records the
remaining questions of the job with that error, instead of waiting out every timeout again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .chat import ChatClient, ChatError, extract_json, image_content
from .judges import Answer, JudgedImage, Question, unanswered

SYSTEM_PROMPT = (
    "You check images for an automated quality review. Answer the question about the image "
    "with Yes or No first, then give a one-sentence reason."
)
LEADING_CONFIDENCE = 0.9
CONCLUDED_CONFIDENCE = 0.7

_YES = ("yes", "yeah", "yep", "true", "correct")
_NO = ("no", "nope", "false", "incorrect")
# Replies that decline to commit, whatever yes or no they also contain.
_HEDGES = re.compile(
    r"\b(yes\s+and\s+no|can\s*not\s+(tell|determine|say|be\s+sure)|can'?t\s+(tell|determine|"
    r"say|be\s+sure)|unable\s+to\s+(tell|determine|say)|not\s+sure|unsure|hard\s+to\s+"
    r"(tell|say)|impossible\s+to\s+(tell|say)|i\s+don'?t\s+know|it\s+depends)\b",
    re.IGNORECASE,
)
_WORD = r"(yes|yeah|yep|no|nope|true|false|correct|incorrect)"
# A reply that opens with its answer: "Yes.", "No – the background is grey", "Answer: No".
_LEADING = re.compile(
    rf"^(?:(?:final\s+)?answer\s*[:\-–—]\s*)?(?P<word>{_WORD})\b(?P<gap>[\s.,;:!\-–—)]*)"
    r"(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)
# "No visible defects" uses "no" as a determiner, not as an answer: a leading "no" with no
# punctuation after it counts only when a word follows that cannot start a noun phrase.
_AFTER_BARE_NO = re.compile(
    r"(it|it's|its|this|that|these|those|the|there|they|i|not|he|she|we)\b", re.IGNORECASE
)
# A conclusion later in the reply: "so the answer is yes", "Answer: no", "Therefore, yes." The
# word must end a clause, so "so no retouching is needed" is not read as an answer.
_CONCLUDED = re.compile(
    rf"(?:\banswer\s*(?:is|would\s+be|:)\s*|\b(?:so|thus|therefore|hence)\s*,?\s*(?:the\s+"
    rf"answer\s+is\s*)?)[\"'“”‘’]?{_WORD}\b[\"'“”‘’]?(?=\s*(?:[.,;:!)]|$))",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _Parsed:
    answer: bool
    reason: str
    leading: bool


def _tidy(text: str) -> str:
    """The reply without markdown emphasis and with one space between words."""
    return re.sub(r"\s+", " ", re.sub(r"[*_`#]+", "", text)).strip()


def _polarity(word: str) -> bool:
    return word.lower() in _YES


def _from_json(text: str) -> _Parsed | None:
    value = extract_json(text)
    if not isinstance(value, dict):
        return None
    answer = value.get("answer")
    if isinstance(answer, bool):
        verdict = answer
    elif isinstance(answer, str) and answer.strip().lower().rstrip(".!") in _YES + _NO:
        verdict = _polarity(answer.strip().lower().rstrip(".!"))
    else:
        return None
    reason = value.get("reason") or value.get("explanation") or ""
    return _Parsed(verdict, _tidy(str(reason)), leading=True)


def _parse(text: str) -> _Parsed | None:
    if not text or not text.strip():
        return None
    if "{" in text:
        parsed = _from_json(text)
        if parsed is not None:
            return parsed
    tidy = _tidy(text)
    if _HEDGES.search(tidy):
        return None
    leading = _LEADING.match(tidy)
    if (
        leading
        and leading.group("word").lower() == "no"
        and not leading.group("gap").strip()
        and leading.group("rest")
        and not _AFTER_BARE_NO.match(leading.group("rest"))
    ):
        leading = None
    conclusions = {_polarity(m.group(1)) for m in _CONCLUDED.finditer(tidy)}
    if leading:
        verdict = _polarity(leading.group("word"))
        if conclusions - {verdict}:  # "Yes ... so the answer is no": contradicts itself
            return None
        rest = leading.group("rest").strip()
        return _Parsed(verdict, rest[:1].upper() + rest[1:], leading=True)
    if len(conclusions) == 1:
        return _Parsed(conclusions.pop(), tidy, leading=False)
    return None


def parse_yes_no(text: str) -> tuple[bool, str] | None:
    """The yes (True) or no (False) in a model's reply and the reason it gave, or None when the
    reply does not commit to one (no answer, a hedge, or both)."""
    parsed = _parse(text)
    return None if parsed is None else (parsed.answer, parsed.reason)


class VlmJudge:
    """Answers ``vlm`` questions by asking a vision-language model about each image."""

    name = "vlm"

    def __init__(self, client: ChatClient, *, max_tokens: int = 80) -> None:
        self.client = client
        self.max_tokens = max_tokens

    def answer(
        self, images: Sequence[JudgedImage], questions: Sequence[Question]
    ) -> list[list[Answer]]:
        results: list[list[Answer]] = []
        outage: ChatError | None = None
        for image in images:
            answers = []
            for question in questions:
                if outage is not None:
                    answers.append(self._unasked(question, outage))
                    continue
                try:
                    answers.append(self._ask(image, question))
                except ChatError as exc:
                    answers.append(self._failed(question, exc))
                    if exc.endpoint_is_down:
                        outage = exc
            results.append(answers)
        return results

    def _ask(self, image: JudgedImage, question: Question) -> Answer:
        reply = self.client.complete(
            [
                {"role": "system", "content": SYSTEM_PROMPT},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": question.text}, image_content(image.png)],
                },
            ],
            max_tokens=self.max_tokens,
        )
        parsed = _parse(reply)
        if parsed is None:
            excerpt = _tidy(reply)[:120]
            return Answer(
                key=question.key,
                judge=self.name,
                answer=None,
                confidence=0.0,
                reason=f"The VLM's reply has no clear yes or no: {excerpt!r}",
                error="unparseable",
            )
        return Answer(
            key=question.key,
            judge=self.name,
            answer=parsed.answer,
            confidence=LEADING_CONFIDENCE if parsed.leading else CONCLUDED_CONFIDENCE,
            reason=parsed.reason or ("Yes." if parsed.answer else "No."),
        )

    def _failed(self, question: Question, exc: ChatError) -> Answer:
        return unanswered([question], judge=self.name, error=exc.kind, reason=exc.message)[0]

    def _unasked(self, question: Question, outage: ChatError) -> Answer:
        reason = f"Not asked: the VLM endpoint failed on an earlier question ({outage.message})"
        return unanswered([question], judge=self.name, error=outage.kind, reason=reason)[0]
