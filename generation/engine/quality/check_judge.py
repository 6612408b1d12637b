"""The quality gate's built-in judge: questions answered by the image checks, no model
(Django-free; see `checks`).

It answers the questions whose ``judge`` is ``check`` by their ``Question.check``:

- the default defect checks, `DEFAULT_CHECK_QUESTIONS`, required on every image: black or NaN,
  blank, exposure, blur, noise, wrong size (only when the job asked for a size) and
  near-duplicate (among the images of one job, judged together);
- the kinds a rubric may use, `CHECK_KINDS`, whose words come from the filled-in question:
  ``colour`` ("Is the mug red?": the subject is the colour the question names), ``backdrop``
  ("Is the background plain and light?": plain, and of the tone or colour named, if any) and
  ``subject`` ("Is the product centred and whole?": one clear subject, not cut off) and
  ``inside_box`` ("Is the product inside box 1?": the salient region — what stands out from the
  backdrop — has its centre and most of itself in the box: the question's own ``box``, else the
  job layout's box the question numbers, else the layout's first);
- ``subject_cropped`` on its own, for a rubric that wants only that.

``answer`` is True when the image has the property asked about (the gate compares it with
``Question.expected``). A question it cannot answer gets ``answer=None`` and an error:
``unknown_check``, ``no_colour_in_question``, ``no_box`` (an ``inside_box`` question with no box
to check against), ``bad_image`` (pixels that are not an RGB image),
``not_a_check_question`` (a question for another judge).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from . import checks
from .checks import BACKDROP_TONES, DEFAULT_THRESHOLDS, CheckResult, CheckThresholds
from .colour import COLOUR_ALIASES, COLOUR_NAMES
from .judges import Answer, JudgedImage, Question, unanswered

CHECK_KINDS = ("colour", "backdrop", "subject", "inside_box")

DEFAULT_CHECK_QUESTIONS: tuple[Question, ...] = tuple(
    Question(key=check, text=text, judge="check", check=check, required=True)
    for check, text in (
        ("black_or_nan", "Is the image free of black or NaN pixels?"),
        ("blank_or_flat", "Does the image show something, not a blank or flat fill?"),
        ("exposure", "Is the image neither under- nor over-exposed?"),
        ("blur", "Is the image sharp, not blurred?"),
        ("noise", "Is the image a picture, not random noise?"),
        ("wrong_size", "Is the image the size the job asked for?"),
        ("near_duplicate", "Is the image distinct from the job's other images?"),
    )
)

# Checks of one image with the thresholds, by the name a question gives.
# (black_or_nan is run on the pixels as given, before any conversion: see `_answer`.)
_IMAGE_CHECKS: dict[str, Callable[[np.ndarray, CheckThresholds], CheckResult]] = {
    "blank_or_flat": checks.blank_or_flat,
    "exposure": checks.exposure,
    "blur": checks.blur,
    "noise": checks.noise,
    "subject_cropped": checks.subject_cropped,
    "subject": checks.subject,
}
CHECK_NAMES: tuple[str, ...] = (
    *(question.check for question in DEFAULT_CHECK_QUESTIONS),
    *CHECK_KINDS,
    "subject_cropped",
)

# The words of a question: colour names and their aliases, and the tones a backdrop may have.
_TONE_WORDS = {**{tone: tone for tone in BACKDROP_TONES}, "bright": "light", "pale": "light"}
_COLOUR_WORDS = {**{name: name for name in COLOUR_NAMES}, **COLOUR_ALIASES}
_BACKDROP_NOUNS = frozenset({"background", "backdrop", "backgrounds", "backdrops"})
# Words that may stand between a tone and the backdrop noun it describes ("a plain, light grey
# studio background"), and, after the noun, before its tone ("the background is plain and light").
_BEFORE_NOUN = frozenset(
    {"and", "plain", "clean", "solid", "simple", "seamless", "studio", "uniform", "pure", "very",
     "neutral", "smooth"}
)  # fmt: skip
_AFTER_NOUN = _BEFORE_NOUN | {"a", "an", "the", "is", "are", "mostly", "entirely", "fully"}


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def _backdrop_positions(words: list[str]) -> set[int]:
    """Indices of the words that describe the backdrop: colour and tone words that lead up to
    a backdrop noun through describing words, or follow one through them."""
    described = set()
    for index, word in enumerate(words):
        if word not in _BACKDROP_NOUNS:
            continue
        for step, describing in ((-1, _BEFORE_NOUN), (1, _AFTER_NOUN)):
            position = index + step
            while 0 <= position < len(words):
                other = words[position]
                if other in _TONE_WORDS or other in _COLOUR_WORDS:
                    described.add(position)
                elif other not in describing:
                    break
                position += step
    return described


def subject_colour_in(text: str) -> str | None:
    """The colour a question asks of its subject: its first colour word (a `COLOUR_NAMES` name
    or alias) that does not describe the backdrop; None if it names none."""
    words = _words(text)
    backdrop_words = _backdrop_positions(words)
    for index, word in enumerate(words):
        if word in _COLOUR_WORDS and index not in backdrop_words:
            return _COLOUR_WORDS[word]
    return None


def backdrop_tones_in(text: str) -> list[str]:
    """What a question asks of the backdrop besides being plain: the tones (`BACKDROP_TONES`)
    and colour names of the words describing it, in order. A question that names no backdrop
    noun ("Is it on white?") counts every tone and colour word."""
    words = _words(text)
    positions = _backdrop_positions(words)
    if not any(word in _BACKDROP_NOUNS for word in words):
        positions = set(range(len(words)))
    tones = []
    for index in sorted(positions):
        word = words[index]
        tone = _TONE_WORDS.get(word) or _COLOUR_WORDS.get(word)
        if tone is not None and tone not in tones:
            tones.append(tone)
    return tones


_BOX_NUMBER = re.compile(r"\bbox\s*#?\s*(\d+)\b", re.IGNORECASE)


def question_box(
    question: Question, layout: Sequence[tuple[float, float, float, float]]
) -> tuple[float, float, float, float] | None:
    """The box an ``inside_box`` question is about: its own, else the layout's box it numbers
    ("inside box 2", counted from 1), else the layout's first; None when there is none."""
    if question.box is not None:
        return question.box
    match = _BOX_NUMBER.search(question.text)
    index = int(match.group(1)) - 1 if match else 0
    return tuple(layout[index]) if 0 <= index < len(layout) else None  # type: ignore[return-value]


class CheckJudge:
    """Answers ``check`` questions with the built-in image checks (see the module docstring)."""

    name = "check"

    def __init__(self, thresholds: CheckThresholds | None = None) -> None:
        self.thresholds = thresholds or DEFAULT_THRESHOLDS

    def answer(
        self, images: Sequence[JudgedImage], questions: Sequence[Question]
    ) -> list[list[Answer]]:
        pixels: list[np.ndarray | None] = []
        problems: list[str] = []
        for image in images:
            try:
                pixels.append(checks.as_rgb_uint8(image.pixels))
                problems.append("")
            except ValueError as error:
                pixels.append(None)
                problems.append(str(error))
        duplicates: list[CheckResult | None] = [None] * len(images)
        if any(question.check == "near_duplicate" for question in questions):
            judged = [index for index, array in enumerate(pixels) if array is not None]
            found = checks.near_duplicates([pixels[i] for i in judged], self.thresholds)
            for index, result in zip(judged, found, strict=True):
                duplicates[index] = result
        answers = []
        for image, array, problem, duplicate in zip(
            images, pixels, problems, duplicates, strict=True
        ):
            if array is None:
                answers.append(
                    unanswered(questions, judge=self.name, error="bad_image", reason=problem)
                )
                continue
            answers.append(
                [self._answer(image, array, duplicate, question) for question in questions]
            )
        return answers

    def _answer(
        self,
        image: JudgedImage,
        pixels: np.ndarray,
        duplicate: CheckResult | None,
        question: Question,
    ) -> Answer:
        def unjudged(error: str, reason: str) -> Answer:
            return Answer(question.key, self.name, None, 0.0, reason, error)

        if question.judge != self.name:
            return unjudged(
                "not_a_check_question", f"A '{question.judge}' question, not one for '{self.name}'."
            )
        check = question.check
        if check == "black_or_nan":  # on the pixels as given: a float output may hold NaNs
            result = checks.black_or_nan(image.pixels, self.thresholds)
        elif check in _IMAGE_CHECKS:
            result = _IMAGE_CHECKS[check](pixels, self.thresholds)
        elif check == "near_duplicate" and duplicate is not None:
            result = duplicate
        elif check == "wrong_size":
            if image.expected_size is None:
                reason = "The job asked for no particular size, so the size was not checked."
                return Answer(question.key, self.name, True, 0.0, reason)
            result = checks.wrong_size(pixels, image.expected_size)
        elif check == "colour":
            colour = subject_colour_in(question.text)
            if colour is None:
                return unjudged(
                    "no_colour_in_question",
                    f"The question names no colour to check ({', '.join(COLOUR_NAMES)}).",
                )
            result = checks.colour_expectation(pixels, colour, self.thresholds)
        elif check == "backdrop":
            result = self._backdrop(pixels, backdrop_tones_in(question.text))
        elif check == "inside_box":
            box = question_box(question, image.layout)
            if box is None:
                return unjudged(
                    "no_box",
                    "The question gives no box and the job has no layout box it could mean.",
                )
            result = checks.inside_box(pixels, box, self.thresholds)
        else:
            return unjudged(
                "unknown_check",
                f"No built-in check '{check}'; use one of {', '.join(CHECK_NAMES)}.",
            )
        return Answer(question.key, self.name, result.passed, result.confidence, result.reason)

    def _backdrop(self, pixels: np.ndarray, tones: list[str]) -> CheckResult:
        """Plain and of every tone asked; the first that fails is the verdict."""
        results = [checks.backdrop(pixels, tone, self.thresholds) for tone in tones or [None]]
        return next((result for result in results if not result.passed), results[-1])
