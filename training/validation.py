"""A trained version's validation images: the job's validation prompts (its instance and class
prompts) with fixed seeds, made with the new weights (by the trainer) and, to compare, with the
base model alone and with the category's production version — each stored and judged by the
quality gate (default checks, safety and the category's rubric), as a generated image would be."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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

    from .worker import VALIDATION_SEEDS, trainer_config

    config = trainer_config(job)  # sample as the trainer's own validation images were

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
                num_inference_steps=config.sample_steps,
                guidance_scale=config.guidance_scale,
                height=resolution,
                width=resolution,
            )
        for seed, image in zip(VALIDATION_SEEDS, out.images, strict=True):
            path = into / f"{index}-{seed}.png"
            image.save(path)
            paths.append(path)
    return paths


def render_comparison(job: TrainingJob) -> list[Path]:
    """The base model's images for the same prompts and seeds (beside the candidate's)."""
    from .worker import work_dir

    return _render(job, version=None, into=work_dir(job) / "validation-base")


def judge_validation(
    job: TrainingJob, made: Sequence[tuple[Path, Any]], *, step: int
) -> list[ValidationImage]:
    """Store each (image path, version or None) and its gate verdict as a `ValidationImage`:
    the defaults and the category's rubric, judged as a generated image of the category is."""
    from generation import quality

    gate = quality.gate_for(category_id=job.category_id)
    prompts = _prompts(job)
    resolution = int(job.params["resolution"])
    pngs = [path.read_bytes() for path, _ in made]
    images = [
        quality.judged_image(None, png=png, prompt=prompts[0], size=(resolution, resolution))
        for png in pngs
    ]
    # Judged per version: the near-duplicate check compares the images of one "job", and the
    # base model's class-prompt images are meant to look like the candidate's.
    answers: list[Any] = [None] * len(made)
    for version in {v for _, v in made}:
        mine = [n for n, (_, v) in enumerate(made) if v == version]
        found = quality.answer(gate, [images[n] for n in mine], judges=gate.inline_judges)
        for n, one in zip(mine, found, strict=True):
            answers[n] = one
    rows = []
    for (path, version), png, found in zip(made, pngs, answers, strict=True):
        match = _NAME.match(path.name)
        prompt_index, seed = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
        who = f"v{version.pk}" if version is not None else "base"
        key = f"orgs/{job.organization_id}/trainings/{job.id}/validation/{who}/{path.name}"
        storage.write_object(key, png)
        rows.append(
            ValidationImage.objects.create(
                organization_id=job.organization_id,
                job=job,
                model_version=version,
                step=step,
                prompt=prompts[prompt_index] if prompt_index < len(prompts) else "",
                seed=seed,
                storage_key=key,
                scores=quality.verdict_of(gate, found).as_scores(),
            )
        )
    return rows


def production_pass_rate(job: TrainingJob, production: Any) -> float:
    """How often the production version's images of the same prompts and seeds pass the gate."""
    from .worker import work_dir

    paths = _render(job, version=production, into=work_dir(job) / f"validation-v{production.pk}")
    rows = judge_validation(job, [(p, production) for p in paths], step=0)
    return sum(bool(r.scores.get("passed")) for r in rows) / len(rows) if rows else 0.0
