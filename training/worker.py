"""The train worker's work for one job: claim it, run the DreamBooth trainer with progress, cancel
and lease renewal wired to the row, then register the result as a candidate model version with
its validation images and their quality-gate scores (and promote it when the category asked for
that and it beats production on the same prompts and seeds).

The job's working folder (``EASEL_TRAINING_WORK_DIR/<job id>``) survives the worker: checkpoints
live there, so after a crash the reaper hands the job to the next worker, which resumes from the
last checkpoint (the step count continues). torch is imported inside functions only.
"""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from generation import storage
from tenants import metrics

from .models import TrainingImage, TrainingJob, TrainingStatus
from .services import training_lease_until, training_log_append
from .transitions import training_transition

logger = logging.getLogger(__name__)

VALIDATION_SEEDS = (0, 1, 2, 3)
PROGRESS_WRITE_SECONDS = 0.5


def work_dir(job: TrainingJob) -> Path:
    return Path(settings.EASEL_TRAINING_WORK_DIR) / str(job.id)


def claim_training(*, job_id: Any) -> TrainingJob | None:
    claimed = training_transition(
        job_id=job_id,
        from_status=TrainingStatus.PENDING,
        to_status=TrainingStatus.RUNNING,
        where={"cancel_requested": False},
        attempts=F("attempts") + 1,
        started_at=timezone.now(),
        lease_expires_at=training_lease_until(),
    )
    if claimed is not None:
        training_log_append(claimed.id, f"attempt {claimed.attempts} started on a train worker")
    return claimed


class _Watch:
    """Progress and cancel, written to the row at most every PROGRESS_WRITE_SECONDS."""

    def __init__(self, job: TrainingJob) -> None:
        self.job = job
        self.curve: list[list[float]] = [list(p) for p in job.loss_curve or []]
        self.last_write = float("-inf")
        self.canceled = False

    def progress(self, p: Any) -> None:
        if self.curve and self.curve[-1][0] >= p.step:
            # Resumed from a checkpoint older than the last step recorded: those steps are redone.
            self.curve = [point for point in self.curve if point[0] < p.step]
        self.curve.append([p.step, round(float(p.loss), 6)])
        metrics.TRAINING_STEPS.labels(mode=self.job.mode).inc()
        now = time.monotonic()
        if now - self.last_write < PROGRESS_WRITE_SECONDS and p.step < p.total:
            return
        self.last_write = now
        TrainingJob.objects.filter(id=self.job.id, status=TrainingStatus.RUNNING).update(
            step=p.step,
            total_steps=p.total,
            loss_curve=self.curve,
            lease_expires_at=training_lease_until(),
        )

    def should_stop(self) -> bool:
        if not self.canceled:
            self.canceled = TrainingJob.objects.filter(
                id=self.job.id, cancel_requested=True
            ).exists()
        return self.canceled


def trainer_config(job: TrainingJob) -> Any:
    from .engine.dreambooth import DreamBoothConfig

    p = dict(job.params)
    return DreamBoothConfig(
        instance_prompt=job.instance_prompt,
        class_prompt=job.class_prompt,
        rare_token=job.rare_token,
        mode=job.mode,
        validation_seeds=VALIDATION_SEEDS,
        **{k: v for k, v in p.items() if k in DreamBoothConfig.__dataclass_fields__},
    )


def training_run(*, job_id: Any) -> TrainingJob | None:
    """Claim and run the job; its final state, or None if another worker has it."""
    from PIL import Image

    from models_registry.artifacts import materialize_base

    from .engine.dreambooth import TrainingCanceled, train_dreambooth

    job = claim_training(job_id=job_id)
    if job is None:
        return None
    started = time.monotonic()
    watch = _Watch(job)
    try:
        config = trainer_config(job)
        base_dir = materialize_base(job.base_model)
        images = []
        for row in TrainingImage.objects.filter(job=job).order_by("index"):
            image = Image.open(io.BytesIO(storage.read_object(row.storage_key)), formats=["PNG"])
            image.load()
            images.append(image)
        result = train_dreambooth(
            base_model_dir=base_dir,
            instance_images=images,
            config=config,
            output_dir=work_dir(job),
            class_cache_dir=Path(settings.EASEL_BUILD_CACHE_DIR).expanduser() / "class-images",
            device=settings.EASEL_DEVICE,
            on_progress=watch.progress,
            should_stop=watch.should_stop,
        )
    except TrainingCanceled as stop:
        training_log_append(job.id, f"canceled at step {stop.step}")
        return training_transition(
            job_id=job.id,
            from_status=TrainingStatus.RUNNING,
            to_status=TrainingStatus.CANCELED,
            on_attempt=job.attempts,
            step=stop.step,
            loss_curve=watch.curve,
            gpu_seconds=F("gpu_seconds") + (time.monotonic() - started),
        )
    except Exception as exc:
        logger.exception("training job %s failed", job.id)
        training_log_append(job.id, f"failed: {type(exc).__name__}: {exc}")
        return training_transition(
            job_id=job.id,
            from_status=TrainingStatus.RUNNING,
            to_status=TrainingStatus.FAILED,
            on_attempt=job.attempts,
            loss_curve=watch.curve,
            error_code="invalid_parameters" if isinstance(exc, ValueError) else "training_error",
            error_message=f"Training failed ({type(exc).__name__}: {exc}). Check the photos and "
            "parameters and submit again; if it keeps failing, report the job id.",
            gpu_seconds=F("gpu_seconds") + (time.monotonic() - started),
        )
    seconds = time.monotonic() - started
    training_log_append(
        job.id,
        f"trained {result.steps} steps in {seconds:.0f} s"
        + (f" (resumed from step {result.resumed_from_step})" if result.resumed_from_step else ""),
    )
    return _register(job, result, watch=watch, gpu_seconds=seconds)


def _register(job: TrainingJob, result: Any, *, watch: _Watch, gpu_seconds: float) -> Any:
    """The candidate version, its validation images and scores, the promotion, the success."""
    from models_registry.services import model_version_register

    from .validation import judge_validation, render_comparison

    version = model_version_register(
        actor=None,
        category=job.category,
        base=job.base_model,
        kind=job.mode,
        source_path=result.output_path,
        training_job_id=job.id,
        label=f"DreamBooth {job.rare_token} ({job.created_at:%Y-%m-%d})",
        metrics={
            "final_loss": result.loss_curve[-1][1] if result.loss_curve else None,
            "steps": result.steps,
            "train_seconds": round(result.seconds, 1),
            "instance_images": TrainingImage.objects.filter(job=job).count(),
            "instance_sha256": list(
                TrainingImage.objects.filter(job=job).values_list("sha256", flat=True)
            ),
            "params": job.params,
        },
    )
    final = max(result.validation_images) if result.validation_images else None
    made = [(path, version) for path in result.validation_images.get(final, [])]
    made += [(path, None) for path in render_comparison(job)]
    rows = judge_validation(job, made, step=final or result.steps)
    candidate = [r for r in rows if r.model_version_id == version.pk]
    passed = sum(bool(r.scores.get("passed")) for r in candidate)
    metrics = {"validation_pass_rate": round(passed / len(candidate), 3) if candidate else None}
    version.metrics = {**version.metrics, **metrics}
    version.save(update_fields=["metrics"])
    promoted = _maybe_promote(job, version) if job.category.auto_promote else None
    if promoted:
        training_log_append(job.id, f"version {version.pk} promoted to production ({promoted})")
    return training_transition(
        job_id=job.id,
        from_status=TrainingStatus.RUNNING,
        to_status=TrainingStatus.SUCCEEDED,
        on_attempt=job.attempts,
        output_version=version,
        step=result.steps,
        loss_curve=watch.curve,
        metrics={**metrics, "steps": result.steps, "seconds": round(result.seconds, 1)},
        gpu_seconds=F("gpu_seconds") + gpu_seconds,
    )


def _maybe_promote(job: TrainingJob, version: Any) -> str | None:
    """Promote when the candidate's validation images pass the gate more often than the current
    production version's on the same prompts and seeds (no production version: it wins)."""
    from models_registry.selectors import alias_version
    from models_registry.services import alias_promote

    from .validation import production_pass_rate

    production = alias_version(category=job.category, alias="production")
    rate = version.metrics.get("validation_pass_rate") or 0.0
    if production is not None:
        current = production_pass_rate(job, production)
        if rate <= current:
            training_log_append(
                job.id,
                f"not promoted: validation pass rate {rate:.2f} does not beat production "
                f"v{production.pk}'s {current:.2f}",
            )
            return None
    from tenants.principal import Principal
    from tenants.roles import Role

    # The category's policy acts, not the person who submitted the job (an editor may not promote).
    system = Principal(org=job.organization, role=Role.ADMIN)
    alias_promote(actor=system, category=job.category, alias="production", version=version)
    return f"validation pass rate {rate:.2f}"
