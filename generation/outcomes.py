"""What happens to a job once its attempt's images are judged: it succeeds, runs again with a
refined prompt, or ends ``failed_quality``.

Per image index, the job's result is its best image that passed the gate (highest score, then the
earliest attempt). When every index has one, the job succeeds. Otherwise, with attempts left, the
failed questions of the latest attempt refine the prompt (the LLM when the organization turned it
on and one is configured, else the rules of ``engine.quality.refine``) and only the indices that
have no passing image are made again; out of attempts, the job ends ``failed_quality`` with the
reasons, every attempt's images and scores kept. Quota is settled on the images of every attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from django.db.models import F

from tenants.audit import AuditVerb

from .engine.quality.gate import Verdict
from .engine.quality.refine import Refinement, refine_by_rules
from .models import GeneratedImage, GenerationAttempt, GenerationJob, JobStatus
from .protocol import MAX_CFG_SCALE
from .quality import JobGate, llm_client
from .services import job_batch_key
from .transitions import job_transition

logger = logging.getLogger(__name__)


def _attempt_params(job: GenerationJob, rows: Sequence[GeneratedImage]) -> dict[str, Any]:
    p = job.params
    return {
        "cfg_scale": p.get("cfg_scale"),
        "steps": p.get("steps"),
        "width": p.get("width"),
        "height": p.get("height"),
        "indices": [row.index for row in rows],
        "seeds": [row.seed for row in rows],
    }


def _mark_results(job: GenerationJob) -> list[int]:
    """Set ``is_result`` per index (its best passing image, else its latest attempt's); returns
    the indices that have no passing image."""
    rows = list(GeneratedImage.objects.filter(job=job).order_by("index", "attempt"))
    by_index: dict[int, list[GeneratedImage]] = {}
    for row in rows:
        by_index.setdefault(row.index, []).append(row)
    failing = []
    chosen: set[Any] = set()
    for index, candidates in sorted(by_index.items()):
        passing = [r for r in candidates if (r.scores or {}).get("passed") is True]
        if passing:
            best = max(passing, key=lambda r: (_score(r), -r.attempt))
        else:
            best = candidates[-1]
            failing.append(index)
        chosen.add(best.pk)
    missing = [i for i in range(job.num_images) if i not in by_index]
    GeneratedImage.objects.filter(job=job).exclude(pk__in=chosen).update(is_result=False)
    GeneratedImage.objects.filter(pk__in=chosen).update(is_result=True)
    return sorted(failing + missing)


def _score(row: GeneratedImage) -> float:
    score = (row.scores or {}).get("score")
    return float(score) if isinstance(score, int | float) else 1.0


def _refine(
    job: GenerationJob, gate: JobGate, verdicts: Sequence[tuple[int, Verdict]], *, use_llm: bool
) -> Refinement:
    failed = [pair for _, v in verdicts if not v.passed for pair in v.failed]
    p = job.params
    rules = refine_by_rules(
        prompt=job.prompt,
        negative_prompt=p.get("negative_prompt") or "",
        cfg_scale=float(p.get("cfg_scale") or 7.0),
        seed=int(p.get("seed") or 0),
        attempt=job.attempts,
        failed=failed,
        max_cfg_scale=MAX_CFG_SCALE,
    )
    if not use_llm:
        return rules
    from .engine.quality.llm import LlmError, refine_prompt

    try:
        refined = refine_prompt(
            llm_client(),
            prompt=job.prompt,
            negative_prompt=p.get("negative_prompt") or "",
            failures=[(q.text, a.reason) for q, a in failed],
        )
    except LlmError as exc:
        logger.warning("LLM refinement of job %s failed (%s); refining by rules", job.id, exc)
        return Refinement(
            prompt=rules.prompt,
            negative_prompt=rules.negative_prompt,
            cfg_scale=rules.cfg_scale,
            seed=rules.seed,
            by="rules",
            changes=[
                f"the LLM could not refine the prompt ({exc}); used the rules",
                *rules.changes,
            ],
        )
    return Refinement(
        prompt=refined.prompt,
        negative_prompt=refined.negative_prompt,
        cfg_scale=job.params.get("cfg_scale") or 7.0,
        seed=rules.seed,
        by="llm",
        changes=[refined.note or "the LLM rewrote the prompt", f"new seed {rules.seed}"],
    )


def attempt_judged(
    *,
    job: GenerationJob,
    from_status: str,
    gate: JobGate,
    verdicts: Sequence[tuple[int, Verdict]],
    record: Callable[[GenerationJob], list[GeneratedImage]],
    use_llm: bool,
    **fields: Any,
) -> GenerationJob | None:
    """Finish an attempt whose images have verdicts (``(index, verdict)`` per image made):
    succeed, refine and run again, or fail the quality gate.

    ``record(job)`` writes this attempt's image rows with their scores (it runs inside the
    transition, before quota, audit and webhook); ``fields`` go into the same update.
    """
    from .tasks import enqueue_generation

    failing = _failing_after(job, verdicts)

    def record_attempt(finished: GenerationJob) -> list[int]:
        # What this attempt ran with is ``job``'s (a refinement has already updated ``finished``).
        rows = record(finished)
        GenerationAttempt.objects.update_or_create(
            job=finished,
            number=job.attempts,
            defaults={
                "prompt": job.prompt,
                "negative_prompt": job.params.get("negative_prompt") or "",
                "params": _attempt_params(job, rows),
                "refinement": job.refinement or {},
                "passed": all(v.passed for _, v in verdicts),
            },
        )
        return _mark_results(finished)

    if not failing:
        return job_transition(
            job_id=job.id,
            from_status=from_status,
            to_status=JobStatus.SUCCEEDED,
            on_attempt=job.attempts,
            before_effects=record_attempt,
            progress=1.0,
            error_code="",
            error_message="",
            **fields,
        )
    reasons = sorted({r for _, v in verdicts if not v.passed for r in v.reasons})
    if job.attempts < job.max_attempts and not job.cancel_requested:
        refinement = _refine(job, gate, verdicts, use_llm=use_llm)
        params = {
            **job.params,
            "prompt": refinement.prompt,
            "negative_prompt": refinement.negative_prompt,
            "cfg_scale": refinement.cfg_scale,
            "seed": refinement.seed,
        }
        moved = job_transition(
            job_id=job.id,
            from_status=from_status,
            to_status=JobStatus.PENDING,
            on_attempt=job.attempts,
            verb=AuditVerb.GENERATION_REFINED,
            before_effects=record_attempt,
            prompt=refinement.prompt,
            params=params,
            batch_key=job_batch_key(job, params),
            regenerate=failing,
            refinement={
                "by": refinement.by,
                "changes": refinement.changes,
                "because": reasons,
                "after_attempt": job.attempts,
            },
            progress=0.0,
            lease_expires_at=None,
            error_code="",
            error_message="",
            **fields,
        )
        if moved is not None:
            enqueue_generation(job=moved)
        return moved
    attempts = f"{job.attempts} attempt{'s' if job.attempts != 1 else ''}"
    which = ", ".join(str(i) for i in failing)
    message = (
        f"No image passed the quality gate in {attempts} (image {which}): "
        + "; ".join(reasons[:6])
        + ". Change the prompt or the rubric, or review the images anyway in the job's attempts."
    )
    return job_transition(
        job_id=job.id,
        from_status=from_status,
        to_status=JobStatus.FAILED_QUALITY,
        on_attempt=job.attempts,
        before_effects=record_attempt,
        progress=1.0,
        error_code="failed_quality",
        error_message=message[:2000],
        **fields,
    )


def _failing_after(job: GenerationJob, verdicts: Sequence[tuple[int, Verdict]]) -> list[int]:
    """Indices that would still lack a passing image once this attempt's verdicts are in."""
    passed_before = set(
        GeneratedImage.objects.filter(job=job, scores__passed=True)
        .exclude(attempt=job.attempts)
        .values_list("index", flat=True)
    )
    passing_now = {index for index, v in verdicts if v.passed}
    return [i for i in range(job.num_images) if i not in passed_before | passing_now]


def gpu_seconds_added(seconds: float) -> Any:
    """The update that adds an attempt's GPU-seconds to the job's (attempts accumulate)."""
    return F("gpu_seconds") + seconds


def queued_judging_run(*, job_id: Any, attempt: int) -> GenerationJob | None:
    """The CPU worker's half of judging: ask the network judges about an attempt waiting in
    ``judging``, then finish it as the inline half would (refining with the LLM when on)."""
    from . import quality, storage

    job = (
        GenerationJob.objects.select_related("organization", "template", "category")
        .filter(id=job_id, status=JobStatus.JUDGING, attempts=attempt)
        .first()
    )
    if job is None:
        return None  # already finished by another delivery, or canceled
    if job.cancel_requested:
        return job_transition(
            job_id=job.id,
            from_status=JobStatus.JUDGING,
            to_status=JobStatus.CANCELED,
            on_attempt=attempt,
        )
    gate = quality.job_gate(job)
    rows = list(GeneratedImage.objects.filter(job=job, attempt=attempt).order_by("index"))
    size = (int(job.params["width"]), int(job.params["height"]))
    images = [
        quality.judged_image(
            None,
            png=storage.read_object(row.storage_key),
            prompt=job.prompt,
            size=size,
            layout=quality.layout_boxes(job.params),
        )
        for row in rows
    ]
    known = [quality.answers_from_scores(row.scores or {}) for row in rows]
    asked = quality.answer(gate, images, judges=quality.QUEUED_JUDGES)
    answers = [{**before, **now} for before, now in zip(known, asked, strict=True)]
    for found in answers:
        for question in gate.questions:
            found.setdefault(
                question.key,
                quality.unanswered_one(question, reason="No judge answered this question."),
            )
    verdicts = [quality.verdict_of(gate, a) for a in answers]

    def record(finished: GenerationJob) -> list[GeneratedImage]:
        for row, v in zip(rows, verdicts, strict=True):
            row.scores = v.as_scores()
            row.save(update_fields=["scores"])
        return rows

    return attempt_judged(
        job=job,
        from_status=JobStatus.JUDGING,
        gate=gate,
        verdicts=[(row.index, v) for row, v in zip(rows, verdicts, strict=True)],
        record=record,
        use_llm=gate.llm_refine,
    )
