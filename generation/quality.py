"""The quality gate, Django side: which questions a job's images are asked and by which judges.

Every image is asked:

1. the built-in defect checks (black/NaN, blank, exposure, blur, noise, size, near-duplicate),
   required, always;
2. "Is the image safe for work?" by the NudeNet detector, required, unless
   ``EASEL_SAFETY_ENABLED`` is off;
3. its template's rubric, then its category's, with the job's template variables filled in.

Where judges run. Model-free checks, the safety detector (a local ONNX model, tens of ms an image)
and CLIP (a local model, on the GPU worker's accelerator) run *inline*, in the GPU worker right
after the images are made. The VLM is a network peer, and so is the LLM that refines prompts:
they run on the CPU worker's ``default`` queue (``judge_generation_task``), so a slow or failing
endpoint never holds a GPU. A question whose judge is off (CLIP or VLM not enabled for the
organization or not configured) is reported as not judged and left out of the score.
"""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from .engine.quality.check_judge import DEFAULT_CHECK_QUESTIONS, CheckJudge
from .engine.quality.gate import JUDGE_OFF, Verdict, verdict
from .engine.quality.judges import Answer, Judge, JudgedImage, Question, unanswered
from .engine.quality.safety import SAFETY_QUESTION
from .models import CategoryRubric, GenerationJob, PromptTemplate, QualitySettings
from .rubrics import fill_question

logger = logging.getLogger(__name__)

INLINE_JUDGES = frozenset({"check", "safety", "clip"})
QUEUED_JUDGES = frozenset({"vlm"})
NO_RUBRIC_THRESHOLD = 1.0


@dataclass(frozen=True)
class JobGate:
    """What one job's images are asked, and which optional judges its organization uses."""

    questions: list[Question]
    threshold: float
    clip: bool
    vlm: bool
    llm_refine: bool

    @property
    def needs_queue(self) -> bool:
        """Whether some question waits for a network judge (run on the CPU worker)."""
        return self.vlm and any(q.judge in QUEUED_JUDGES for q in self.questions)

    @property
    def inline_judges(self) -> frozenset[str]:
        """The judges the GPU worker asks (a network judge that is off answers "not judged"
        there too, so the attempt needs no queue)."""
        return INLINE_JUDGES if self.needs_queue else INLINE_JUDGES | QUEUED_JUDGES


def quality_settings_for(org: Any) -> QualitySettings:
    """The organization's settings (defaults, unsaved, when it never changed them)."""
    found = QualitySettings.objects.filter(organization=org).first()
    return found or QualitySettings(organization=org)


def rubric_questions(
    items: Sequence[dict[str, Any]], *, prefix: str, variables: dict[str, str]
) -> list[Question]:
    return [
        Question(
            key=f"{prefix}{number}",
            text=fill_question(item["question"], variables),
            judge=item["judge"],
            expected=bool(item["expected"]),
            weight=float(item["weight"]),
            check=item.get("check", ""),
            box=tuple(item["box"]) if item.get("box") else None,
        )
        for number, item in enumerate(items, start=1)
    ]


def job_template(job: GenerationJob) -> PromptTemplate | None:
    """The template version the job was rendered from (the FK may point at a newer version)."""
    if job.template_id is None:
        return None
    template = job.template
    if job.template_version is None or template.version == job.template_version:
        return template
    return (
        PromptTemplate.objects.filter(
            organization_id=job.organization_id,
            application=template.application,
            version=job.template_version,
        ).first()
        or template
    )


def gate_for(
    *,
    template: Any = None,
    category_id: int | None = None,
    variables: dict[str, str] | None = None,
    org_settings: QualitySettings | None = None,
) -> JobGate:
    """The questions asked of an image: the required defaults (checks, safety), then the
    template's rubric (``template`` has ``rubric`` and ``pass_threshold``), then the category's,
    with ``variables`` filled in. Both rubrics apply, so the stricter threshold holds. Without
    ``org_settings`` the optional judges are off."""
    variables = variables or {}
    questions: list[Question] = list(DEFAULT_CHECK_QUESTIONS)
    if settings.EASEL_SAFETY_ENABLED:
        questions.append(SAFETY_QUESTION)
    thresholds = []
    if template is not None and template.rubric:
        questions += rubric_questions(template.rubric, prefix="t", variables=variables)
        thresholds.append(template.pass_threshold)
    category_rubric = (
        CategoryRubric.objects.filter(category_id=category_id).first() if category_id else None
    )
    if category_rubric is not None and category_rubric.questions:
        questions += rubric_questions(category_rubric.questions, prefix="c", variables=variables)
        thresholds.append(category_rubric.pass_threshold)
    on = org_settings or QualitySettings()
    return JobGate(
        questions=questions,
        threshold=max(thresholds, default=NO_RUBRIC_THRESHOLD),
        clip=on.clip_enabled and bool(settings.EASEL_CLIP_MODEL_PATH),
        vlm=on.vlm_enabled and bool(settings.EASEL_VLM_URL),
        llm_refine=on.llm_refine_enabled and bool(settings.EASEL_LLM_URL),
    )


def job_gate(job: GenerationJob) -> JobGate:
    return gate_for(
        template=job_template(job),
        category_id=job.category_id,
        variables={str(k): str(v) for k, v in (job.params.get("variables") or {}).items()},
        org_settings=quality_settings_for(job.organization),
    )


# --- judges, built once per process and configuration ---------------------------------------


@functools.lru_cache(maxsize=4)
def _safety_judge(threshold: float) -> Judge:
    from .engine.quality.safety import SafetyJudge

    return SafetyJudge(threshold=threshold)


@functools.lru_cache(maxsize=2)
def _clip_judge(folder: str, threshold: float) -> Judge:
    from .engine.quality.clip import ClipJudge

    return ClipJudge(folder, threshold=threshold)


def _clip_judge_for(location: str, threshold: float) -> Judge:
    try:
        folder = clip_checkpoint_folder(location)
    except Exception as exc:  # an unreachable bucket must not fail the job: CLIP is unavailable
        from .engine.quality.clip import ClipJudge

        logger.warning("CLIP checkpoint %s could not be fetched: %s", location, exc)
        return ClipJudge(f"{location} (could not be fetched: {exc})", threshold=threshold)
    return _clip_judge(folder, threshold)


def clip_checkpoint_folder(location: str) -> str:
    """``EASEL_CLIP_MODEL_PATH`` as a local folder: a path as it is; ``s3://bucket/prefix`` copied
    once (with the ``AWS_*`` credentials and endpoint) into the build cache, by its address."""
    if not location.startswith("s3://"):
        return location
    import hashlib
    import shutil
    import tempfile

    from models_registry.artifacts import download_s3_prefix

    digest = hashlib.sha256(location.encode()).hexdigest()[:16]
    folder = Path(settings.EASEL_BUILD_CACHE_DIR).expanduser() / f"clip-{digest}"
    if (folder / ".complete").exists():
        return str(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        fetched = download_s3_prefix(location, staging)
        (fetched / ".complete").touch()
        shutil.rmtree(folder, ignore_errors=True)
        fetched.rename(folder)  # atomic: a half-downloaded checkpoint is never used
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(folder)


def chat_client(*, url: str, model: str, api_key: str) -> Any:
    from .engine.quality.chat import ChatClient

    return ChatClient(
        url,
        model,
        api_key=api_key or None,
        timeout=float(settings.EASEL_JUDGE_TIMEOUT_SECONDS),
        max_retries=int(settings.EASEL_JUDGE_MAX_RETRIES),
    )


def _vlm_judge() -> Judge:
    from .engine.quality.vlm import VlmJudge

    return VlmJudge(
        chat_client(
            url=settings.EASEL_VLM_URL,
            model=settings.EASEL_VLM_MODEL,
            api_key=settings.EASEL_VLM_API_KEY,
        )
    )


def llm_client() -> Any:
    return chat_client(
        url=settings.EASEL_LLM_URL,
        model=settings.EASEL_LLM_MODEL,
        api_key=settings.EASEL_LLM_API_KEY,
    )


def _judge_for(name: str, gate: JobGate) -> Judge | None:
    """The judge answering ``name``'s questions, or None when it is off for this job."""
    if name == "check":
        return CheckJudge()
    if name == "safety":
        return _safety_judge(float(settings.EASEL_SAFETY_THRESHOLD))
    if name == "clip" and gate.clip:
        return _clip_judge_for(settings.EASEL_CLIP_MODEL_PATH, float(settings.EASEL_CLIP_THRESHOLD))
    if name == "vlm" and gate.vlm:
        return _vlm_judge()
    return None


_OFF_REASON = {
    "clip": "CLIP is not enabled for this organization (or EASEL_CLIP_MODEL_PATH is not set).",
    "vlm": "The VLM judge is not enabled for this organization (or EASEL_VLM_URL is not set).",
}


def answer(
    gate: JobGate, images: Sequence[JudgedImage], *, judges: frozenset[str]
) -> list[dict[str, Answer]]:
    """Per image, the answers (by question key) of the questions whose judge is in ``judges``;
    a judge that is off answers "not judged", and one that raises is recorded, not propagated."""
    results: list[dict[str, Answer]] = [{} for _ in images]
    for name in sorted(judges):
        questions = [q for q in gate.questions if q.judge == name]
        if not questions:
            continue
        judge = _judge_for(name, gate)
        if judge is None:
            per_image = [
                unanswered(questions, judge=name, error=JUDGE_OFF, reason=_OFF_REASON[name])
                for _ in images
            ]
        else:
            try:
                per_image = judge.answer(images, questions)
            except Exception as exc:  # a judge's bug must not lose the job's images
                logger.exception("judge %s failed", name)
                reason = f"The {name} judge failed ({type(exc).__name__}: {exc})."
                per_image = [
                    unanswered(questions, judge=name, error="judge_error", reason=reason)
                    for _ in images
                ]
        for found, answers in zip(results, per_image, strict=True):
            found.update({a.key: a for a in answers})
    return results


def verdict_of(gate: JobGate, answers: dict[str, Answer]) -> Verdict:
    return verdict(
        gate.questions, [answers[q.key] for q in gate.questions], threshold=gate.threshold
    )


def pending_scores(gate: JobGate, answers: dict[str, Answer]) -> dict[str, Any]:
    """``scores`` of an image whose network judges have not answered yet."""
    from .engine.quality.gate import answer_record

    by_key = {q.key: q for q in gate.questions}
    return {
        "pending": sorted(QUEUED_JUDGES),
        "answers": [answer_record(by_key[key], a) for key, a in answers.items()],
    }


def answers_from_scores(scores: dict[str, Any]) -> dict[str, Answer]:
    """The answers an image's ``scores`` recorded (to finish judging on another worker)."""
    return {
        r["key"]: Answer(
            key=r["key"],
            judge=r["judge"],
            answer=r["answer"],
            confidence=float(r["confidence"]),
            reason=r["reason"],
            error=r.get("error", ""),
        )
        for r in scores.get("answers", [])
    }


def layout_boxes(params: dict[str, Any]) -> tuple[tuple[float, float, float, float], ...]:
    """A job's layout boxes, in order (what "box N" in an ``inside_box`` question means)."""
    return tuple(tuple(item["box"]) for item in params.get("layout") or ())  # type: ignore[misc]


def judged_image(
    image: Any,
    *,
    png: bytes,
    prompt: str,
    size: tuple[int, int],
    layout: tuple[tuple[float, float, float, float], ...] = (),
) -> JudgedImage:
    """A `JudgedImage` from a PIL image (or, with ``image=None``, from the PNG bytes)."""
    import numpy as np
    from PIL import Image

    if image is None:
        image = Image.open(io.BytesIO(png), formats=["PNG"])
    pixels = np.asarray(image.convert("RGB"))
    return JudgedImage(pixels=pixels, png=png, prompt=prompt, expected_size=size, layout=layout)


def unanswered_one(question: Question, *, reason: str) -> Answer:
    return Answer(
        key=question.key,
        judge=question.judge,
        answer=None,
        confidence=0.0,
        reason=reason,
        error="missing",
    )
