"""Training checkpoints: everything a run needs to continue exactly where it stopped.

`<checkpoints_dir>/step-<N>/` holds

- `<module>.safetensors`: the trainable parameters of each trained module, by parameter name
  (LoRA matrices in LoRA mode, the whole UNet in full mode);
- `optimizer.pt`, `lr_scheduler.pt` (and `grad_scaler.pt` under fp16): their state dicts;
- `rng.pt` and `rng.json`: the training generator's and the global torch, CUDA, numpy and Python
  random states;
- `state.json`: the step, the loss curve so far, and whatever else the trainer records.

A checkpoint is written to a hidden staging folder and renamed into place, so a folder named
`step-<N>` is always complete: a run killed mid-save leaves only a staging folder, which the
next save of the same step replaces and `latest_checkpoint` ignores.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

STEP_DIR = re.compile(r"^step-(\d+)$")
STATE = "state.json"


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path


def checkpoint_path(checkpoints_dir: Path, step: int) -> Path:
    return Path(checkpoints_dir) / f"step-{step}"


def list_checkpoints(checkpoints_dir: Path) -> list[Checkpoint]:
    """Complete checkpoints, oldest first."""
    checkpoints_dir = Path(checkpoints_dir)
    if not checkpoints_dir.is_dir():
        return []
    found = []
    for path in checkpoints_dir.iterdir():
        match = STEP_DIR.match(path.name)
        if match and (path / STATE).is_file():
            found.append(Checkpoint(step=int(match.group(1)), path=path))
    return sorted(found, key=lambda checkpoint: checkpoint.step)


def latest_checkpoint(checkpoints_dir: Path) -> Checkpoint | None:
    found = list_checkpoints(checkpoints_dir)
    return found[-1] if found else None


def trainable_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters of `module` that the optimizer updates, by name."""
    return {
        name: param.detach().contiguous()
        for name, param in module.named_parameters()
        if param.requires_grad
    }


def _rng_states(generator: torch.Generator) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors for rng.pt, JSON for rng.json)."""
    tensors: dict[str, Any] = {"generator": generator.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors["cuda"] = torch.cuda.get_rng_state_all()
    algorithm, keys, position, has_gauss, cached = np.random.get_state()
    version, python_state, gauss_next = random.getstate()
    plain = {
        "numpy": [algorithm, keys.tolist(), position, has_gauss, cached],
        "python": [version, list(python_state), gauss_next],
    }
    return tensors, plain


def _restore_rng_states(folder: Path, generator: torch.Generator) -> None:
    tensors = torch.load(folder / "rng.pt", weights_only=True)
    plain = json.loads((folder / "rng.json").read_text(encoding="utf-8"))
    generator.set_state(tensors["generator"])
    torch.set_rng_state(tensors["torch"])
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(tensors["cuda"])
    algorithm, keys, position, has_gauss, cached = plain["numpy"]
    np.random.set_state((algorithm, np.array(keys, dtype=np.uint32), position, has_gauss, cached))
    version, python_state, gauss_next = plain["python"]
    random.setstate((version, tuple(python_state), gauss_next))


def save_checkpoint(
    checkpoints_dir: Path,
    *,
    step: int,
    modules: Mapping[str, torch.nn.Module],
    optimizer: torch.optim.Optimizer,
    lr_scheduler: Any,
    generator: torch.Generator,
    grad_scaler: Any | None = None,
    state: Mapping[str, Any] | None = None,
    keep_last: int | None = None,
) -> Checkpoint:
    """Write `step-<step>` atomically; then, with `keep_last`, delete all but the newest ones."""
    final = checkpoint_path(checkpoints_dir, step)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        for name, module in modules.items():
            tensors = {key: value.cpu() for key, value in trainable_state(module).items()}
            save_file(tensors, staging / f"{name}.safetensors")
        torch.save(optimizer.state_dict(), staging / "optimizer.pt")
        torch.save(lr_scheduler.state_dict(), staging / "lr_scheduler.pt")
        if grad_scaler is not None:
            torch.save(grad_scaler.state_dict(), staging / "grad_scaler.pt")
        tensors, plain = _rng_states(generator)
        torch.save(tensors, staging / "rng.pt")
        (staging / "rng.json").write_text(json.dumps(plain), encoding="utf-8")
        record = {**(state or {}), "step": step}
        (staging / STATE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        if final.exists():  # the same step saved before (a rerun): the newer save wins
            shutil.rmtree(final)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if keep_last is not None:
        for old in list_checkpoints(checkpoints_dir)[:-keep_last]:
            shutil.rmtree(old.path, ignore_errors=True)
    return Checkpoint(step=step, path=final)


def load_checkpoint(
    checkpoint: Checkpoint,
    *,
    modules: Mapping[str, torch.nn.Module],
    optimizer: torch.optim.Optimizer,
    lr_scheduler: Any,
    generator: torch.Generator,
    grad_scaler: Any | None = None,
) -> dict[str, Any]:
    """Restore weights, optimizer, schedule and random states in place; return `state.json`.

    Raises ValueError when the checkpoint's trainable parameters are not the modules' (another
    mode, rank or set of trained modules), before anything is changed.
    """
    folder = checkpoint.path
    loaded = {name: load_file(folder / f"{name}.safetensors") for name in modules}
    for name, module in modules.items():
        expected = {key: p.shape for key, p in trainable_state(module).items()}
        found = {key: tensor.shape for key, tensor in loaded[name].items()}
        if expected != found:
            raise ValueError(
                f"Checkpoint {folder} does not fit this run's trainable {name} parameters "
                "(other mode, rank or trained modules); resume with the settings it was saved "
                "with, or start in an empty output folder."
            )
    with torch.no_grad():
        for name, module in modules.items():
            params = dict(module.named_parameters())
            for key, tensor in loaded[name].items():
                params[key].copy_(tensor)
    # The optimizer moves its saved state to its parameters' device itself.
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    lr_scheduler.load_state_dict(torch.load(folder / "lr_scheduler.pt", weights_only=True))
    if grad_scaler is not None and (folder / "grad_scaler.pt").is_file():
        grad_scaler.load_state_dict(torch.load(folder / "grad_scaler.pt", weights_only=True))
    _restore_rng_states(folder, generator)
    return json.loads((folder / STATE).read_text(encoding="utf-8"))
