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
    checks: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if self.passed is None:
            return "not scored"
        return "passed" if self.passed else "failed"


def quality_of(scores: dict[str, Any] | None) -> Quality:
    """Read the gate's verdict from an image's ``scores`` (tolerant of what a judge wrote)."""
    scores = scores or {}
    passed = scores.get("passed")
    score = scores.get("score", scores.get("overall"))
    reasons = scores.get("reasons") or scores.get("failed") or []
    if isinstance(reasons, str):
        reasons = [reasons]
    checks = {
        k: v
        for k, v in scores.items()
        if k not in {"passed", "score", "overall", "reasons", "failed"}
    }
    return Quality(
        passed=bool(passed) if passed is not None else None,
        score=float(score) if isinstance(score, int | float) else None,
        reasons=[str(r) for r in reasons],
        checks=checks,
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
class JobView:
    job: GenerationJob
    images: list[ImageView]
    attempts_images: dict[int, list[ImageView]]

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
        """The last attempt of each index: what the job delivered."""
        latest: dict[int, ImageView] = {}
        for view in self.images:
            current = latest.get(view.image.index)
            if current is None or view.image.attempt > current.image.attempt:
                latest[view.image.index] = view
        return [latest[i] for i in sorted(latest)]

    @property
    def earlier_images(self) -> list[ImageView]:
        final = {view.image.pk for view in self.final_images}
        return [view for view in self.images if view.image.pk not in final]


def job_view(job: GenerationJob) -> JobView:
    images = [image_view(image) for image in job.images.all().order_by("index", "attempt")]
    by_attempt: dict[int, list[ImageView]] = {}
    for view in images:
        by_attempt.setdefault(view.image.attempt, []).append(view)
    return JobView(job=job, images=images, attempts_images=by_attempt)
