"""Grounded generation on a GLIGEN UNet: a layout's phrases placed in its boxes. Django-free.

A GLIGEN UNet (``attention_type="gated"``; `models_registry.engine.gligen`) reads its boxes
through ``cross_attention_kwargs["gligen"]``: per image, the boxes ``(x0, y0, x1, y1)`` relative
to the frame, each phrase's pooled text embedding, and a mask of which slots hold a box. Passing
them that way works with every Stable Diffusion pipeline (text-to-image, image-to-image and
inpainting alike), and each image of a batch can have its own layout — unlike diffusers'
deprecated ``StableDiffusionGLIGENPipeline``, which takes one layout per call.

With classifier-free guidance the unconditional half of the batch gets its boxes masked, as
GLIGEN's own pipeline does. Scheduled sampling (GLIGEN §3.3) turns the fusers off after the
first share of the steps: the layout is set early, the later steps refine detail.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

# Boxes and phrases only: "gated-text-image" checkpoints also want image embeddings, which
# the protocol has no field for, so they are not served as grounded.
GROUNDED_ATTENTION = ("gated",)
# GLIGEN's pipeline acts on the first 0.3 of the steps; the built-in models, drawn in 20 steps
# or fewer, say their own share in easel.json ("grounding_fraction").
DEFAULT_GROUNDING_FRACTION = 0.3


@dataclass(frozen=True)
class LayoutBox:
    """One phrase and its box, relative to the frame: 0 ≤ x0 < x1 ≤ 1, 0 ≤ y0 < y1 ≤ 1."""

    phrase: str
    box: tuple[float, float, float, float]


Layout = Sequence[LayoutBox]


def is_grounded(pipe: Any) -> bool:
    """Whether the pipeline's UNet is GLIGEN's (it can follow a layout)."""
    return getattr(pipe.unet.config, "attention_type", "default") in GROUNDED_ATTENTION


def _fusers(unet: Any) -> list[Any]:
    return [
        module for module in unet.modules() if type(module).__name__ == "GatedSelfAttentionDense"
    ]


@contextlib.contextmanager
def fusers_on(unet: Any) -> Iterator[list[Any]]:
    """The fusers, on for the call and on again afterwards (`step_end` may turn them off)."""
    fusers = _fusers(unet)
    for fuser in fusers:
        fuser.enabled = True
    try:
        yield fusers
    finally:
        for fuser in fusers:
            fuser.enabled = True


def uses_guidance(pipe: Any, guidance_scale: float) -> bool:
    """What a Stable Diffusion pipeline decides: CFG doubles the batch when scale > 1."""
    return guidance_scale > 1.0 and getattr(pipe.unet.config, "time_cond_proj_dim", None) is None


def gligen_kwargs(pipe: Any, layouts: Sequence[Layout], *, guidance: bool) -> dict[str, Any]:
    """``cross_attention_kwargs["gligen"]`` for a batch whose image ``i`` follows
    ``layouts[i]`` (an empty layout: no boxes). With ``guidance`` the batch is
    ``[unconditional…, conditional…]`` and the unconditional half has no boxes."""
    import torch

    device, dtype = pipe.unet.device, pipe.unet.dtype
    slots = max(1, max(len(layout) for layout in layouts))
    width = pipe.unet.config.cross_attention_dim
    phrases = [item.phrase for layout in layouts for item in layout]
    pooled = torch.zeros(0, width, device=device, dtype=dtype)
    if phrases:
        tokens = pipe.tokenizer(
            phrases,
            padding="max_length",
            max_length=pipe.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        with torch.no_grad():
            pooled = pipe.text_encoder(tokens.input_ids.to(pipe.text_encoder.device)).pooler_output
        pooled = pooled.to(device=device, dtype=dtype)
    n = len(layouts)
    boxes = torch.zeros(n, slots, 4, device=device, dtype=dtype)
    embeds = torch.zeros(n, slots, width, device=device, dtype=dtype)
    masks = torch.zeros(n, slots, device=device, dtype=dtype)
    row = 0
    for image, layout in enumerate(layouts):
        for slot, item in enumerate(layout):
            boxes[image, slot] = torch.tensor(item.box, dtype=dtype)
            embeds[image, slot] = pooled[row]
            masks[image, slot] = 1.0
            row += 1
    if guidance:
        boxes, embeds = torch.cat([boxes, boxes]), torch.cat([embeds, embeds])
        masks = torch.cat([torch.zeros_like(masks), masks])
    return {"boxes": boxes, "positive_embeddings": embeds, "masks": masks}
