"""LoRA adapters on a warm base pipeline: load each adapter once, then switch between adapters
(or to none) by activating it — the base weights are never reloaded.

    use_adapter(pipe, lora_path=folder_or_file, adapter_name="v12")   # load once, activate
    use_adapter(pipe, lora_path=None, adapter_name=None)               # base model only

At most ``max_loaded`` adapters stay resident per pipeline; when another is needed the least
recently used one is replaced — in place with diffusers' hotswap where the installed version
supports it (no new modules, no recompilation of a compiled UNet), otherwise deleted and loaded
afresh. ``use_adapter`` acts immediately; its return value may also be used as a context manager
(``with use_adapter(...) as pipe:``), which yields the pipeline and leaves the adapter active.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_MAX_LOADED = 8
STATE_ATTR = "_easel_adapters"
DEFAULT_WEIGHT_NAME = "pytorch_lora_weights.safetensors"


@dataclass
class AdapterState:
    """What is loaded on one pipeline: our adapter name → the peft slot holding it."""

    slots: OrderedDict[str, str] = field(default_factory=OrderedDict)
    active: str | None = None
    next_slot: int = 0
    loads: int = 0
    hotswaps: int = 0


class ActiveAdapter:
    """Returned by ``use_adapter``; as a context manager it yields the pipeline."""

    def __init__(self, pipe: Any, name: str | None) -> None:
        self.pipe = pipe
        self.name = name

    def __enter__(self) -> Any:
        return self.pipe

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


def adapter_state(pipe: Any) -> AdapterState:
    state = getattr(pipe, STATE_ATTR, None)
    if state is None:
        state = AdapterState()
        setattr(pipe, STATE_ATTR, state)
    return state


def _weights_location(lora_path: Path) -> tuple[str, str]:
    """(folder, weight file name) that ``load_lora_weights`` understands."""
    path = Path(lora_path)
    if path.is_file():
        return str(path.parent), path.name
    if (path / DEFAULT_WEIGHT_NAME).is_file():
        return str(path), DEFAULT_WEIGHT_NAME
    candidates = sorted(path.glob("*.safetensors"))
    if len(candidates) != 1:
        raise FileNotFoundError(
            f"{path} holds {len(candidates)} .safetensors files; expected the LoRA weights "
            f"({DEFAULT_WEIGHT_NAME}) alone."
        )
    return str(path), candidates[0].name


def _supports_hotswap(pipe: Any) -> bool:
    try:
        return "hotswap" in inspect.signature(pipe.load_lora_weights).parameters
    except (TypeError, ValueError, AttributeError):
        return False


def _pick_victim(state: AdapterState) -> str:
    """Least recently used adapter, sparing the active one while another can go."""
    return next((n for n in state.slots if n != state.active), next(iter(state.slots)))


def _load(pipe: Any, state: AdapterState, name: str, lora_path: Path, max_loaded: int) -> None:
    folder, weight_name = _weights_location(lora_path)
    freed: str | None = None  # a peft slot given up by an evicted adapter, reused if possible
    while len(state.slots) >= max_loaded:
        victim = _pick_victim(state)
        if freed is not None:
            pipe.delete_adapters(freed)
        freed = state.slots.pop(victim)
        if state.active == victim:
            state.active = None
    if freed is not None and _supports_hotswap(pipe):
        try:
            pipe.load_lora_weights(
                folder, weight_name=weight_name, adapter_name=freed, hotswap=True
            )
            state.slots[name] = freed
            state.hotswaps += 1
            logger.info("adapters: hot-swapped %s into slot %s", name, freed)
            return
        except (ValueError, RuntimeError, NotImplementedError) as exc:
            # Other rank/target modules, or a text-encoder LoRA: hotswap cannot take it.
            logger.info("adapters: hotswap of %s not possible (%s); loading afresh", name, exc)
    if freed is not None:
        pipe.delete_adapters(freed)
    slot = f"easel_{state.next_slot}"
    state.next_slot += 1
    pipe.load_lora_weights(folder, weight_name=weight_name, adapter_name=slot)
    state.slots[name] = slot
    state.loads += 1


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def use_adapter(
    pipe: Any,
    *,
    lora_path: Path | None,
    adapter_name: str | None,
    scale: float = 1.0,
    max_loaded: int = DEFAULT_MAX_LOADED,
) -> ActiveAdapter:
    """Make ``pipe`` run with the LoRA at ``lora_path`` (loaded once under ``adapter_name``),
    or with no adapter when ``lora_path`` is None."""
    state = adapter_state(pipe)
    if lora_path is None:
        if state.slots and state.active is not None:
            pipe.disable_lora()
        state.active = None
        return ActiveAdapter(pipe, None)
    name = _safe_name(adapter_name or str(Path(lora_path).resolve()))
    if name not in state.slots:
        _load(pipe, state, name, Path(lora_path), max(1, max_loaded))
    state.slots.move_to_end(name)
    pipe.enable_lora()
    pipe.set_adapters([state.slots[name]], adapter_weights=[scale])
    state.active = name
    return ActiveAdapter(pipe, name)
