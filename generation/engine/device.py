"""Where a pipeline runs and in which precision: CUDA when present, else CPU; half precision on
a GPU (bf16 where the card supports it, which avoids fp16's VAE overflows), fp32 on CPU."""

from __future__ import annotations

from typing import Any

AUTO = ("", "auto")


def select_device(preferred: str | None = None) -> str:
    """``preferred`` ('auto'/None, 'cpu', 'cuda', 'cuda:1', 'mps') → the device to use.

    An explicit device that is not available is an error rather than a silent fallback, so a
    GPU worker misconfigured onto CPU fails loudly instead of running 100× slower.
    """
    import torch

    choice = (preferred or "").strip().lower()
    if choice in AUTO:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cpu":
        return "cpu"
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"Device '{preferred}' was requested but no CUDA device is visible; set "
                "EASEL_DEVICE=cpu (or auto) or check the GPU driver."
            )
        index = int(choice.split(":", 1)[1]) if ":" in choice else 0
        if index >= torch.cuda.device_count():
            raise RuntimeError(
                f"Device '{preferred}' does not exist: {torch.cuda.device_count()} CUDA device(s)."
            )
        return choice
    if choice == "mps":
        if not torch.backends.mps.is_available():
            raise RuntimeError("Device 'mps' was requested but is not available; use cpu.")
        return "mps"
    raise ValueError(f"Unknown device '{preferred}'; use auto, cpu, cuda, cuda:N or mps.")


def select_dtype(device: str, preferred: str | None = None) -> Any:
    """The torch dtype for ``device``; ``preferred`` ('fp32', 'fp16', 'bf16') overrides."""
    import torch

    named = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if preferred:
        if preferred not in named:
            raise ValueError(f"Unknown dtype '{preferred}'; use one of {sorted(named)}.")
        return named[preferred]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32
