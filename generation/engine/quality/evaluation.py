"""How well the built-in check judge tells good images from defects, on a labelled set
(Django-free): precision and recall per check and overall.

The set is a folder with a ``manifest.json`` (tests/data/quality/, made by
scripts/make_quality_set.py): per image its file, job, prompt, colour and background, its defect
class ("good" or e.g. "blurred") and the question key (`QUESTION_KEYS`) that must flag it. Every
image is asked the default defect questions and one question of each rubric kind, filled in from
its labels (`questions_for`); the images of a job are judged together, in manifest order, so the
near-duplicate check sees them side by side.

A flag is an answer other than the expected yes (an unanswered question flags nothing). A flag on
a good image is a false positive of its check; a defect is caught when its target question flags
it, and missed otherwise. A defect that another question flags too is counted apart, per
question, as ``also_flags``: a black image is also under-exposed, which is true rather than a
false positive, and it is no catch of the exposure check's either.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .check_judge import DEFAULT_CHECK_QUESTIONS, CheckJudge
from .checks import CheckThresholds
from .judges import JudgedImage, Question

RUBRIC_KINDS = ("colour", "backdrop", "subject")
QUESTION_KEYS: tuple[str, ...] = (
    *(question.key for question in DEFAULT_CHECK_QUESTIONS),
    *RUBRIC_KINDS,
)
# The tone a backdrop question asks for each background of the shapes captions.
_BACKDROP_TONE = {"white": "light", "dark": "dark"}


@dataclass(frozen=True)
class LabelledImage:
    """One image of the set and its labels (see scripts/make_quality_set.py's `Entry`)."""

    file: str
    job: str
    prompt: str
    colour: str
    background: str
    defect: str
    target: str
    pixels: np.ndarray = field(repr=False)
    expected_size: tuple[int, int] | None = None

    @property
    def good(self) -> bool:
        return self.defect == "good"


@dataclass
class CheckScore:
    """One question's record on the set."""

    key: str
    caught: int = 0  # its own defects it flagged
    missed: int = 0  # its own defects it passed
    false_flags: int = 0  # good images it flagged
    also_flags: dict[str, int] = field(default_factory=dict)  # other defects flagged, by class

    @property
    def precision(self) -> float | None:
        flagged = self.caught + self.false_flags
        return self.caught / flagged if flagged else None

    @property
    def recall(self) -> float | None:
        defects = self.caught + self.missed
        return self.caught / defects if defects else None


@dataclass
class EvaluationReport:
    """Per question key its `CheckScore`; which good images were flagged and by what; which
    defects their target missed (file, defect, what flagged it instead)."""

    scores: dict[str, CheckScore]
    images: int
    good: int
    defects: dict[str, int]
    flagged_good: dict[str, list[str]] = field(default_factory=dict)
    missed: list[tuple[str, str, list[str]]] = field(default_factory=list)

    def _total(self, name: str, keys: Sequence[str]) -> CheckScore:
        total = CheckScore(name)
        for key in keys:
            score = self.scores[key]
            total.caught += score.caught
            total.missed += score.missed
            total.false_flags += score.false_flags
        return total

    @property
    def overall(self) -> CheckScore:
        """Every question together: precision counts each (good image, flag) pair."""
        return self._total("overall", list(self.scores))

    @property
    def default_checks(self) -> CheckScore:
        keys = [q.key for q in DEFAULT_CHECK_QUESTIONS if q.key in self.scores]
        return self._total("default checks", keys)

    @property
    def rubric_checks(self) -> CheckScore:
        return self._total("rubric kinds", [key for key in RUBRIC_KINDS if key in self.scores])

    @property
    def most_flags_on_a_good_image(self) -> int:
        return max((len(keys) for keys in self.flagged_good.values()), default=0)

    def format_report(self) -> str:
        """A table a person reads: per question, then the totals and what went wrong."""
        defects = ", ".join(f"{name} {count}" for name, count in sorted(self.defects.items()))
        lines = [
            f"{self.images} images: {self.good} good, {self.images - self.good} defects "
            f"({defects})",
            "",
            f"{'question':16} {'precision':>10} {'recall':>8} {'caught':>7} {'missed':>7} "
            f"{'false':>6}  also flags",
        ]
        rows = [*self.scores.values(), self.default_checks, self.rubric_checks, self.overall]
        for score in rows:
            also = ", ".join(f"{name} {count}" for name, count in sorted(score.also_flags.items()))
            lines.append(
                f"{score.key:16} {_rate(score.precision):>10} {_rate(score.recall):>8} "
                f"{score.caught:>7} {score.missed:>7} {score.false_flags:>6}  {also}"
            )
        flagged = len(self.flagged_good)
        lines += ["", f"Good images flagged: {flagged} of {self.good}"]
        for file, keys in sorted(self.flagged_good.items()):
            lines.append(f"  {file}: {', '.join(keys)}")
        lines.append(f"Defects their target question missed: {len(self.missed)}")
        lines += [
            f"  {file} ({defect}): "
            + (f"flagged by {', '.join(others)}" if others else "flagged by nothing")
            for file, defect, others in self.missed
        ]
        return "\n".join(lines)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def questions_for(image: LabelledImage) -> list[Question]:
    """The default defect questions and one of each rubric kind, filled in from the labels."""
    tone = _BACKDROP_TONE.get(image.background, image.background)
    return [
        *DEFAULT_CHECK_QUESTIONS,
        Question(
            key="colour", text=f"Is the product {image.colour}?", judge="check", check="colour"
        ),
        Question(
            key="backdrop",
            text=f"Is the background plain and {tone}?",
            judge="check",
            check="backdrop",
        ),
        Question(
            key="subject", text="Is the product centred and whole?", judge="check", check="subject"
        ),
    ]


def load_set(set_dir: Path | str) -> list[LabelledImage]:
    """The labelled images of a set folder, in manifest order."""
    folder = Path(set_dir)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    images = []
    for row in manifest["images"]:
        with Image.open(folder / row["file"]) as png:
            pixels = np.asarray(png.convert("RGB"))
        size = row.get("expected_size")
        images.append(
            LabelledImage(
                file=row["file"],
                job=row["job"],
                prompt=row["prompt"],
                colour=row["colour"],
                background=row["background"],
                defect=row["defect"],
                target=row["target"],
                pixels=pixels,
                expected_size=(int(size[0]), int(size[1])) if size else None,
            )
        )
    return images


def evaluate(images: Sequence[LabelledImage], judge: CheckJudge | None = None) -> EvaluationReport:
    """Judge `images` job by job and score every question (see the module docstring)."""
    judge = judge or CheckJudge()
    unknown = sorted({i.target for i in images if not i.good} - set(QUESTION_KEYS))
    if unknown:
        raise ValueError(f"Targets {unknown} are no question of the set; use {QUESTION_KEYS}.")
    jobs: dict[str, list[LabelledImage]] = {}
    for image in images:
        jobs.setdefault(image.job, []).append(image)
    scores = {key: CheckScore(key) for key in QUESTION_KEYS}
    defects: dict[str, int] = {}
    report = EvaluationReport(scores=scores, images=len(images), good=0, defects=defects)
    for job in jobs.values():
        questions = questions_for(job[0])
        judged = [
            JudgedImage(pixels=i.pixels, png=b"", prompt=i.prompt, expected_size=i.expected_size)
            for i in job
        ]
        for image, answers in zip(job, judge.answer(judged, questions), strict=True):
            flags = [
                question.key
                for question, answer in zip(questions, answers, strict=True)
                if answer.answer is not None and answer.answer != question.expected
            ]
            _record(report, image, flags)
    return report


def _record(report: EvaluationReport, image: LabelledImage, flags: list[str]) -> None:
    if image.good:
        report.good += 1
        for key in flags:
            report.scores[key].false_flags += 1
        if flags:
            report.flagged_good[image.file] = flags
        return
    report.defects[image.defect] = report.defects.get(image.defect, 0) + 1
    target = report.scores[image.target]
    if image.target in flags:
        target.caught += 1
    else:
        target.missed += 1
        report.missed.append((image.file, image.defect, flags))
    for key in flags:
        if key != image.target:
            also = report.scores[key].also_flags
            also[image.defect] = also.get(image.defect, 0) + 1


def evaluate_checks(
    set_dir: Path | str, thresholds: CheckThresholds | None = None
) -> EvaluationReport:
    """Precision and recall of the check judge on the labelled set in `set_dir`."""
    return evaluate(load_set(set_dir), CheckJudge(thresholds))
