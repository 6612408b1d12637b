"""A fine-tuning job's parameters: defaults by the base model's family, bounds, and messages that
name the field. Plain Python (the web process never imports the trainer, which imports torch);
the worker passes the result to ``training.engine.dreambooth.DreamBoothConfig``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError

# Per family: the native resolution and steps that teach a product in a reasonable time.
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    # The built-in models (scripts/dreambooth_shapes_demo.py): a text-encoder LoRA binds the rare
    # token, and class images drawn at low guidance keep the class as it was.
    "tiny": {
        "resolution": 32,
        "max_steps": 200,
        "learning_rate": 1e-3,
        "num_class_images": 16,
        "train_text_encoder": True,
        "class_guidance_scale": 1.5,
    },
    "sd15": {"resolution": 512, "max_steps": 800, "learning_rate": 1e-4, "num_class_images": 100},
    "sdxl": {"resolution": 1024, "max_steps": 800, "learning_rate": 1e-4, "num_class_images": 100},
}
COMMON_DEFAULTS: dict[str, Any] = {
    "lr_scheduler": "constant",
    "lr_warmup_steps": 0,
    "rank": 8,
    "train_text_encoder": False,
    "batch_size": 1,
    "gradient_accumulation_steps": 1,
    "mixed_precision": "no",
    "gradient_checkpointing": False,
    "seed": 0,
    "with_prior_preservation": True,
    "prior_loss_weight": 1.0,
    "checkpoint_every": 50,
    "validation_every": 0,
}
# name: (type, minimum, maximum) — or the allowed values for a choice.
BOUNDS: dict[str, tuple[type, Any, Any] | tuple[str, ...]] = {
    "resolution": (int, 32, 1024),
    "max_steps": (int, 1, 5000),
    "learning_rate": (float, 1e-7, 1e-2),
    "lr_scheduler": ("constant", "cosine", "linear"),
    "lr_warmup_steps": (int, 0, 1000),
    "rank": (int, 1, 128),
    "train_text_encoder": (bool, None, None),
    "batch_size": (int, 1, 8),
    "gradient_accumulation_steps": (int, 1, 16),
    "mixed_precision": ("no", "fp16", "bf16"),
    "gradient_checkpointing": (bool, None, None),
    "seed": (int, 0, 2**32 - 1),
    "with_prior_preservation": (bool, None, None),
    "prior_loss_weight": (float, 0.0, 10.0),
    "num_class_images": (int, 0, 500),
    "class_guidance_scale": (float, 0.0, 20.0),
    "checkpoint_every": (int, 1, 5000),
    "validation_every": (int, 0, 5000),
}


def _check(name: str, value: Any) -> Any:
    bound = BOUNDS[name]
    if isinstance(bound[0], str):
        if value not in bound:
            raise ValidationError({name: f"Use one of: {', '.join(bound)} (got {value!r})."})
        return value
    kind, low, high = bound
    if kind is bool:
        if not isinstance(value, bool):
            raise ValidationError({name: "Must be true or false."})
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError({name: f"Must be a number ({kind.__name__})."})
    if kind is int and float(value) != int(value):
        raise ValidationError({name: "Must be a whole number."})
    value = kind(value)
    if not low <= value <= high:
        raise ValidationError({name: f"Must be between {low:g} and {high:g} (got {value:g})."})
    return value


def training_params_resolve(*, family: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The family's defaults under ``given``, each checked; unknown names are refused."""
    unknown = sorted(set(given) - set(BOUNDS))
    if unknown:
        raise ValidationError(dict.fromkeys(unknown, "Not a training parameter."))
    resolved = {**COMMON_DEFAULTS, **FAMILY_DEFAULTS.get(family, FAMILY_DEFAULTS["sd15"])}
    resolved.update(given)
    params = {name: _check(name, value) for name, value in resolved.items()}
    if params["resolution"] % 8:
        raise ValidationError({"resolution": "Must be a multiple of 8."})
    if params["mixed_precision"] != "no" and family == "tiny":
        raise ValidationError({"mixed_precision": "The built-in models train in full precision."})
    return params
