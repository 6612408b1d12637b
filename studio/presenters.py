"""What job and image pages show, prepared from the rows: status, attempts, quality verdicts and
reasons, the studio URLs of image files. Reads only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.urls import reverse

from generation.models import GeneratedImage, GenerationJob


@dataclass(frozen=True)
class Quality:
    """The quality gate's verdict on one image, as far as its ``scores`` say."""

    passed: bool | None
    score: float | None
    reasons: list[str] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    threshold: float | None = None
    unsafe: bool = False
    pending: bool = False

    @property
    def label(self) -> str:
        if self.passed is None:
            return "judging" if self.pending else "not scored"
        if self.unsafe:
            return "flagged"
        return "passed" if self.passed else "failed"


def quality_of(scores: dict[str, Any] | None) -> Quality:
    """Read the gate's verdict from an image's ``scores`` (tolerant of what a judge wrote)."""
    scores = scores or {}
    passed = scores.get("passed")
    score = scores.get("score", scores.get("overall"))
    reasons = scores.get("reasons") or []
    if isinstance(reasons, str):
        reasons = [reasons]
    answers = [a for a in scores.get("answers") or [] if isinstance(a, dict)]
    threshold = scores.get("threshold")
    return Quality(
        passed=bool(passed) if passed is not None else None,
        score=float(score) if isinstance(score, int | float) else None,
        reasons=[str(r) for r in reasons],
        answers=answers,
        threshold=float(threshold) if isinstance(threshold, int | float) else None,
        unsafe=bool(scores.get("unsafe")),
        pending=bool(scores.get("pending")),
    )


@dataclass(frozen=True)
class ImageView:
    image: GeneratedImage
    quality: Quality
    url: str
    thumb_url: str
    download_url: str
    detail_url: str


def image_view(image: GeneratedImage) -> ImageView:
    file_url = reverse("studio:image_file", args=[image.pk])
    return ImageView(
        image=image,
        quality=quality_of(image.scores),
        url=file_url,
        thumb_url=f"{file_url}?size=thumb" if image.thumbnail_key else file_url,
        download_url=f"{file_url}?download=1",
        detail_url=reverse("studio:image_detail", args=[image.pk]),
    )


@dataclass(frozen=True)
class AttemptView:
    number: int
    prompt: str
    negative_prompt: str
    params: dict[str, Any]
    refinement: dict[str, Any]
    passed: bool | None
    images: list[ImageView]


@dataclass(frozen=True)
class JobView:
    job: GenerationJob
    images: list[ImageView]
    attempts_images: dict[int, list[ImageView]]
    attempts: list[AttemptView] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.job.is_finished

    @property
    def percent(self) -> int:
        if self.job.status == "succeeded":
            return 100
        return round(100 * (self.job.progress or 0.0))

    @property
    def final_images(self) -> list[ImageView]:
        """Per index, the job's result: its best passing image (else its latest attempt's)."""
        return [view for view in self.images if view.image.is_result]


def job_view(job: GenerationJob) -> JobView:
    # .all(), not order_by(): the selector's prefetch is already in (index, attempt) order, as is
    # the model's, and a new ordering would query every image (and its review) again.
    images = [image_view(image) for image in job.images.all()]
    by_attempt: dict[int, list[ImageView]] = {}
    for view in images:
        by_attempt.setdefault(view.image.attempt, []).append(view)
    attempts = [
        AttemptView(
            number=a.number,
            prompt=a.prompt,
            negative_prompt=a.negative_prompt,
            params=a.params,
            refinement=a.refinement or {},
            passed=a.passed,
            images=by_attempt.get(a.number, []),
        )
        for a in job.attempt_log.all()  # prefetched by number, the model's order too
    ]
    return JobView(job=job, images=images, attempts_images=by_attempt, attempts=attempts)
