"""Class images for prior preservation: what the base model draws for the class prompt
("a box on a white background"), generated once and cached on disk.

DreamBooth trains on these beside the instance images so that the class keeps meaning what it
meant before (the paper's prior-preservation loss). They depend only on the base model and the
sampling settings, so every job on the same base and class reuses one set. A set lives in
`cache_dir/<key>/` (`0000.png`, … and `manifest.json`), where the key hashes the base model
folder's identity, the prompt, the count, the resolution, the seed and the sampling settings;
it is written to a staging folder and renamed into place, so a reader never sees half a set.
Image `i` is drawn with seed `seed + i`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ClassImageSet:
    """A cached set: its folder, its images in order, and how many this call generated."""

    folder: Path
    paths: list[Path]
    generated: int

    def load(self) -> list[Image.Image]:
        images = []
        for path in self.paths:
            with Image.open(path) as image:
                images.append(image.convert("RGB"))
        return images


def model_folder_identity(folder: Path) -> str:
    """A cheap fingerprint of a model folder: its resolved path and every file's name, size and
    modification time. Hashing the weights themselves would cost seconds per gigabyte; a rebuilt
    or moved folder only costs a fresh set of class images."""
    folder = Path(folder).resolve()
    digest = hashlib.sha256(str(folder).encode())
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            stat = path.stat()
            digest.update(f"\n{relative.as_posix()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def class_set_key(
    *,
    base_model_dir: Path,
    class_prompt: str,
    count: int,
    resolution: int,
    seed: int,
    num_inference_steps: int,
    guidance_scale: float,
) -> dict[str, Any]:
    """Everything the images depend on; its hash names the set's folder."""
    return {
        "base_model": model_folder_identity(base_model_dir),
        "class_prompt": class_prompt,
        "count": count,
        "resolution": resolution,
        "seed": seed,
        "num_inference_steps": num_inference_steps,
        "guidance_scale": guidance_scale,
    }


def _complete_set(folder: Path, key: dict[str, Any]) -> list[Path] | None:
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return None
    written = json.loads(manifest.read_text(encoding="utf-8"))
    paths = [folder / name for name in written.get("images", [])]
    if written.get("key") != key or len(paths) != key["count"]:
        return None
    return paths if all(path.is_file() for path in paths) else None


def ensure_class_images(
    *,
    base_model_dir: Path,
    class_prompt: str,
    count: int,
    resolution: int,
    seed: int,
    cache_dir: Path,
    num_inference_steps: int,
    guidance_scale: float,
    make_pipeline: Callable[[], Any],
    batch_size: int = 8,
) -> ClassImageSet:
    """The cached class images for these settings, generated first if the cache lacks them.

    `make_pipeline()` returns the base `StableDiffusionPipeline`; it is called only on a miss,
    so a cached set costs no model load.
    """
    import torch

    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}.")
    if not class_prompt.strip():
        raise ValueError("class_prompt is empty; class images need a prompt.")
    key = class_set_key(
        base_model_dir=base_model_dir,
        class_prompt=class_prompt,
        count=count,
        resolution=resolution,
        seed=seed,
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
    )
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    folder = Path(cache_dir) / name
    paths = _complete_set(folder, key)
    if paths is not None:
        return ClassImageSet(folder=folder, paths=paths, generated=0)

    pipeline = make_pipeline()
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=folder.parent))
    try:
        names = [f"{index:04d}.png" for index in range(count)]
        for start in range(0, count, batch_size):
            indices = range(start, min(start + batch_size, count))
            output = pipeline(
                prompt=[class_prompt] * len(indices),
                generator=[torch.Generator("cpu").manual_seed(seed + i) for i in indices],
                num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale,
                height=resolution,
                width=resolution,
            )
            for index, image in zip(indices, output.images, strict=True):
                image.save(staging / names[index])
        manifest = {"key": key, "images": names}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if _complete_set(folder, key) is not None:  # another job finished the same set first
            shutil.rmtree(staging)
        else:
            if folder.exists():  # a stale set under the same key (its files changed): replace it
                shutil.rmtree(folder)
            os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ClassImageSet(folder=folder, paths=[folder / n for n in names], generated=count)
