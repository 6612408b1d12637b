"""Checks that a folder is a diffusers pipeline of the right family, or that a file is LoRA
weights, before anything is uploaded. Reads only JSON and safetensors headers (no torch), and
names what is missing so a person can fix the folder."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from django.core.exceptions import ValidationError

from .models import Family

# Pipeline classes each family may be served with. A GLIGEN checkpoint is a Stable Diffusion 1.x
# pipeline whose UNet has gated self-attention; the worker serves it as one (`grounding`).
FAMILY_PIPELINES = {
    Family.TINY: {"StableDiffusionPipeline", "StableDiffusionGLIGENPipeline"},
    Family.SD15: {"StableDiffusionPipeline", "StableDiffusionGLIGENPipeline"},
    Family.SDXL: {"StableDiffusionXLPipeline"},
}
# The UNet attention type of GLIGEN on boxes and phrases ("gated-text-image" checkpoints also
# want reference images, which the protocol cannot give: they are not grounded here).
GROUNDED_ATTENTION = ("gated",)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".ckpt", ".msgpack")
REQUIRED_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024


def check_pipeline_folder(path: Path, *, family: str) -> dict:
    """Return the folder's ``model_index.json``; raise ``ValidationError`` naming what is wrong."""
    path = Path(path)
    if not path.is_dir():
        raise ValidationError(
            {"path": f"{path} is not a folder; pass a diffusers pipeline folder."}
        )
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise ValidationError(
            {
                "path": f"{path} is not a diffusers pipeline: model_index.json is missing. "
                "Save the pipeline with pipeline.save_pretrained(DIR) and pass DIR."
            }
        )
    try:
        index = json.loads(index_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError({"path": f"{index_file} is not valid JSON: {exc}."}) from None
    class_name = index.get("_class_name", "")
    allowed = FAMILY_PIPELINES.get(family, set())
    if class_name not in allowed:
        raise ValidationError(
            {
                "family": f"{path} holds a {class_name or 'unnamed'} pipeline, but family "
                f"'{family}' needs {' or '.join(sorted(allowed)) or 'a known family'}."
            }
        )
    problems = []
    for name in REQUIRED_COMPONENTS:
        entry = index.get(name)
        if not entry or entry[0] is None:
            problems.append(f"model_index.json declares no '{name}'")
            continue
        folder = path / name
        if not folder.is_dir():
            problems.append(f"{name}/ is missing (model_index.json lists it)")
        elif name in ("unet", "vae", "text_encoder"):
            if not (folder / "config.json").is_file():
                problems.append(f"{name}/config.json is missing")
            if not any(p.suffix in WEIGHT_SUFFIXES for p in folder.iterdir()):
                problems.append(f"{name}/ has no weights (*.safetensors or *.bin)")
    if class_name == "StableDiffusionGLIGENPipeline" and not is_grounded_folder(path):
        problems.append("a GLIGEN pipeline whose unet/config.json has no gated attention_type")
    if problems:
        raise ValidationError(
            {"path": f"{path} is not a loadable pipeline: {'; '.join(problems)}."}
        )
    return index


def is_grounded_folder(path: Path) -> bool:
    """Whether the pipeline folder's UNet is GLIGEN's (it can follow a ``layout``)."""
    try:
        config = json.loads((Path(path) / "unet" / "config.json").read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return False
    return config.get("attention_type") in GROUNDED_ATTENTION


def safetensors_keys(path: Path) -> list[str]:
    """Tensor names in a safetensors file (header only); ``ValidationError`` if it is not one."""
    try:
        with Path(path).open("rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            if not 0 < length <= MAX_SAFETENSORS_HEADER:
                raise ValueError("implausible header length")
            header = json.loads(fh.read(length))
    except (OSError, ValueError, struct.error) as exc:
        raise ValidationError(
            {"path": f"{path} is not a readable safetensors file ({exc})."}
        ) from None
    return [k for k in header if k != "__metadata__"]


def find_lora_file(path: Path) -> Path:
    """The LoRA weights file at ``path`` (a ``.safetensors`` file, or a folder holding one)."""
    path = Path(path)
    if path.is_dir():
        candidates = sorted(path.glob("*.safetensors"))
        if len(candidates) != 1:
            raise ValidationError(
                {
                    "path": f"{path} must hold exactly one .safetensors file of LoRA weights, "
                    f"found {len(candidates)}."
                }
            )
        path = candidates[0]
    if not path.is_file() or path.suffix != ".safetensors":
        raise ValidationError({"path": f"{path} is not a .safetensors file of LoRA weights."})
    return path


def check_lora_file(path: Path) -> Path:
    """Return the weights file; raise ``ValidationError`` unless it holds LoRA tensors."""
    weights = find_lora_file(path)
    keys = safetensors_keys(weights)
    if not keys:
        raise ValidationError({"path": f"{weights} holds no tensors."})
    if not any("lora" in key.lower() for key in keys):
        raise ValidationError(
            {
                "path": f"{weights} holds no LoRA tensors (no key contains 'lora'); it looks like "
                "a full checkpoint. Register full models with --kind full and a pipeline folder."
            }
        )
    return weights
