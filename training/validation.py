"""A trained version's validation images: the job's validation prompts (its instance and class
prompts) with fixed seeds, made with the new weights (by the trainer) and, to compare, with the
base model alone and with the category's production version — each stored and judged by the
quality gate (default checks, safety and the category's rubric), as a generated image would be."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.conf import settings

from generation import storage

from .models import TrainingJob, ValidationImage

_NAME = re.compile(r"^(\d+)-(\d+)\.png$")


def _prompts(job: TrainingJob) -> list[str]:
    return [p for p in (job.instance_prompt, job.class_prompt) if p]


def _render(job: TrainingJob, *, version: Any | None, into: Path) -> list[Path]:
    """The validation prompts × seeds with the base model, or with ``version`` on it."""
    import torch
    from diffusers import StableDiffusionPipeline

    from generation.engine.adapters import use_adapter
    from models_registry.artifacts import materialize_base, materialize_version

    from .worker import VALIDATION_SEEDS

    if version is not None and version.kind == "full":
        pipe = StableDiffusionPipeline.from_pretrained(materialize_version(version))
    else:
        pipe = StableDiffusionPipeline.from_pretrained(materialize_base(job.base_model))
        if version is not None:
            use_adapter(pipe, lora_path=materialize_version(version), adapter_name=f"v{version.pk}")
    pipe.set_progress_bar_config(disable=True)
    resolution = int(job.params["resolution"])
    into.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, prompt in enumerate(_prompts(job)):
        with torch.inference_mode():
            out = pipe(
                prompt=[prompt] * len(VALIDATION_SEEDS),
                generator=[torch.Generator("cpu").manual_seed(s) for s in VALIDATION_SEEDS],
                num_inference_steps=25,
                guidance_scale=5.0,
                height=resolution,
                width=resolution,
            )
        for seed, image in zip(VALIDATION_SEEDS, out.images, strict=True):
            path = into / f"{index}-{seed}.png"
            image.save(path)
            paths.append(path)
    return paths


def render_comparison(job: TrainingJob, result: Any) -> list[Path]:
    """The base model's images for the same prompts and seeds (beside the candidate's)."""
    from .worker import work_dir

    return _render(job, version=None, into=work_dir(job) / "validation-base")


def judge_validation(
    job: TrainingJob, made: Sequence[tuple[Path, Any]], *, step: int
) -> list[ValidationImage]:
    """Store each (image path, version or None) and its gate verdict as a `ValidationImage`."""
    from PIL import Image

    from generation import quality
    from generation.engine.quality.gate import verdict
    from generation.models import CategoryRubric

    rubric = CategoryRubric.objects.filter(category=job.category).first()
    questions = [*quality.DEFAULT_CHECK_QUESTIONS]
    if settings.EASEL_SAFETY_ENABLED:
        questions.append(quality.SAFETY_QUESTION)
    threshold = quality.NO_RUBRIC_THRESHOLD
    if rubric is not None and rubric.questions:
        questions += quality.rubric_questions(rubric.questions, prefix="c", variables={})
        threshold = rubric.pass_threshold
    prompts = _prompts(job)
    resolution = int(job.params["resolution"])
    rows = []
    by_version: dict[Any, list[tuple[Path, Any]]] = {}
    for path, version in made:
        by_version.setdefault(version, []).append((path, version))
    for version, group in by_version.items():
        images = []
        for path, _ in group:
            png = path.read_bytes()
            image = Image.open(io.BytesIO(png))
            images.append(
                quality.judged_image(
                    image, png=png, prompt=prompts[0], size=(resolution, resolution)
                )
            )
        gate = quality.JobGate(
            questions=questions, threshold=threshold, clip=False, vlm=False, llm_refine=False
        )
        answers = quality.answer(gate, images, judges=quality.INLINE_JUDGES)
        for (path, _), found in zip(group, answers, strict=True):
            match = _NAME.match(path.name)
            prompt_index, seed = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
            who = f"v{version.pk}" if version is not None else "base"
            key = f"orgs/{job.organization_id}/trainings/{job.id}/validation/{who}/{path.name}"
            storage.write_object(key, path.read_bytes())
            v = verdict(questions, [found[q.key] for q in questions], threshold=threshold)
            rows.append(
                ValidationImage.objects.create(
                    organization_id=job.organization_id,
                    job=job,
                    model_version=version,
                    step=step,
                    prompt=prompts[prompt_index] if prompt_index < len(prompts) else "",
                    seed=seed,
                    storage_key=key,
                    scores=v.as_scores(),
                )
            )
    return rows


def production_pass_rate(job: TrainingJob, production: Any) -> float:
    """How often the production version's images of the same prompts and seeds pass the gate."""
    from .worker import work_dir

    paths = _render(job, version=production, into=work_dir(job) / f"validation-v{production.pk}")
    rows = judge_validation(job, [(p, production) for p in paths], step=0)
    return sum(bool(r.scores.get("passed")) for r in rows) / len(rows) if rows else 0.0
