"""Making a batch's images: the warm pipeline with the job's adapter, batched local inference,
or a hosted provider's API; plus the step callback that reports progress and stops
a call when every job of it was canceled.

torch/diffusers are imported inside functions only (the web process imports this module's callers).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from . import metrics
from .models import GenerationJob, JobStatus


@dataclass
class Output:
    """One produced image: PNG-ready PIL image (or PNG bytes from a hosted backend) + its seed."""

    seed: int
    index: int = 0
    image: Any = None
    png_bytes: bytes | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def image_plan(job: GenerationJob) -> list[tuple[int, int]]:
    """(index, seed) of each image this attempt makes: every index on the first attempt, the
    ones the quality gate asked for again after that. Image ``i`` uses seed ``seed + i``."""
    base = int(job.params.get("seed") or 0)
    indices = job.regenerate or range(job.num_images)
    return [(int(i), (base + int(i)) % 2**32) for i in indices]


def generate(
    jobs: Sequence[GenerationJob], *, images_per_call: int | None = None
) -> tuple[dict[Any, list[Output]], float]:
    """Every image of ``jobs``: (images by job id, seconds spent in pipeline calls)."""
    if jobs[0].backend == "local":
        return run_local(jobs, images_per_call=images_per_call)
    return run_hosted(jobs[0]), 0.0


def run_local(
    jobs: Sequence[GenerationJob], *, images_per_call: int | None = None
) -> tuple[dict[Any, list[Output]], float]:
    from .engine.inference import BatchSpec, ImageSpec, run_batch

    leader = jobs[0]
    p = leader.params
    specs: list[ImageSpec] = []
    owners: list[tuple[Any, int]] = []
    for job in jobs:
        variation = variation_inputs(job.params)
        for index, seed in image_plan(job):
            specs.append(
                ImageSpec(
                    prompt=job.prompt,
                    negative_prompt=job.params.get("negative_prompt") or "",
                    seed=seed,
                    **variation,
                )
            )
            owners.append((job.id, index))
    per_call = images_per_call or len(specs)
    watch = StepWatch(jobs)
    images: list[Any] = []
    seconds = 0.0
    with pipeline_for(leader) as pipe:
        metrics.pipeline_cache_sync()
        for start in range(0, len(specs), per_call):
            spec = BatchSpec(
                width=int(p["width"]),
                height=int(p["height"]),
                steps=int(p["steps"]),
                cfg_scale=float(p["cfg_scale"]),
                scheduler_class=scheduler_class(p.get("scheduler")),
                images=specs[start : start + per_call],
                mode=p.get("mode") or "txt2img",
                strength=float(p.get("strength") or 1.0),
                feather=float(p.get("feather") or 0.0),
                grounding_fraction=grounding_fraction(leader),
            )
            result = run_batch(pipe, spec, on_step=watch)
            images += result.images
            seconds += result.seconds
    outputs: dict[Any, list[Output]] = {job.id: [] for job in jobs}
    for (owner, index), image_spec, image in zip(owners, specs, images, strict=True):
        outputs[owner].append(Output(seed=image_spec.seed, index=index, image=image))
    return outputs, seconds


def variation_inputs(params: dict[str, Any]) -> dict[str, Any]:
    """A job's layout, and its source image and mask read from storage, as `ImageSpec` takes
    them (every image of a job shares them)."""
    import io

    from PIL import Image, ImageOps

    from . import storage
    from .engine.grounding import LayoutBox

    inputs: dict[str, Any] = {
        "layout": tuple(
            LayoutBox(phrase=item["phrase"], box=tuple(item["box"]))
            for item in params.get("layout") or ()
        )
    }
    for name, mode in (("source", "RGB"), ("mask", "L")):
        record = params.get(name)
        if record:
            data = storage.read_object(record["storage_key"])
            with Image.open(io.BytesIO(data)) as image:
                inputs[name] = ImageOps.exif_transpose(image).convert(mode)
    return inputs


def grounding_fraction(job: GenerationJob) -> float:
    """The share of steps a layout acts on: the base model's (``easel.json``), else GLIGEN's."""
    from .engine.grounding import DEFAULT_GROUNDING_FRACTION

    defaults = (job.base_model.default_params if job.base_model_id else None) or {}
    return float(defaults.get("grounding_fraction") or DEFAULT_GROUNDING_FRACTION)


def scheduler_class(name: str | None) -> str | None:
    if not name:
        return None
    from .protocol import scheduler_class_name

    return scheduler_class_name(name)


@contextlib.contextmanager
def pipeline_for(job: GenerationJob) -> Iterator[Any]:
    """The warm pipeline from the per-process cache, with the job's LoRA (or none) active.

    A full version is its own pipeline; a LoRA version is swapped in on the warm base; a base
    model turns off whatever adapter the previous batch left active.
    """
    from models_registry.artifacts import materialize_base, materialize_version
    from models_registry.models import VersionKind

    from .engine.adapters import use_adapter
    from .engine.cache import default_cache
    from .engine.device import select_device, select_dtype

    device = select_device(settings.EASEL_DEVICE)
    dtype = select_dtype(device)
    cache = default_cache(settings.EASEL_PIPELINE_CACHE_SIZE)
    version = job.model_version
    if version is not None and version.kind == VersionKind.FULL:
        yield cache.get(materialize_version(version), device=device, dtype=dtype)
        return
    pipe = cache.get(materialize_base(job.base_model), device=device, dtype=dtype)
    if version is None:
        use_adapter(pipe, lora_path=None, adapter_name=None)
    else:
        metrics.adapter_activated(pipe, adapter_name=f"v{version.pk}", job=job)
        use_adapter(pipe, lora_path=materialize_version(version), adapter_name=f"v{version.pk}")
    yield pipe


def run_hosted(job: GenerationJob) -> dict[Any, list[Output]]:
    """A hosted provider's images for one job (never batched: one request per job)."""
    from .backends import backend_for, provider_target, render_request_for
    from .protocol import GenerationParams

    target = provider_target(job.backend)
    if target is None:
        raise ValueError(
            f"The hosted model '{job.backend}' is no longer configured (EASEL_PROVIDERS)."
        )
    plan = image_plan(job)
    params = GenerationParams.from_dict({**job.params, "num_images": len(plan)})
    images = backend_for(target).generate(render_request_for(params))
    return {
        job.id: [
            Output(seed=img.seed, index=index, png_bytes=img.png_bytes, meta=dict(img.meta))
            for (index, _), img in zip(plan, images, strict=False)
        ]
    }


class StepWatch:
    """Step callback: report progress, stop when every job asked to cancel (leases are renewed
    by ``leases.lease_heartbeat`` for the whole claim)."""

    def __init__(self, jobs: Sequence[GenerationJob]) -> None:
        self.ids = [job.id for job in jobs]
        self.interval = float(settings.EASEL_CANCEL_POLL_SECONDS)
        self.last = float("-inf")

    def __call__(self, step: int, total: int) -> bool:
        now = time.monotonic()
        if now - self.last < self.interval:
            return False
        self.last = now
        GenerationJob.objects.filter(id__in=self.ids, status=JobStatus.RUNNING).update(
            progress=step / max(total, 1)
        )
        canceled = GenerationJob.objects.filter(id__in=self.ids, cancel_requested=True).count()
        return canceled == len(self.ids)


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's ``OutOfMemoryError``, Python's ``MemoryError``, or an allocator's out-of-memory
    ``RuntimeError`` (CPU, MPS)."""
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def release_accelerator_memory(exc: BaseException) -> None:
    torch = sys.modules.get("torch")
    if is_out_of_memory(exc) and torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
