"""A per-process LRU cache of warm diffusers pipelines, keyed by (base folder, device, dtype).

Loading a pipeline costs seconds to minutes; a worker keeps the few it uses most in memory and
drops the least recently used one when a new one would exceed ``max_size``. LoRA adapters are
swapped on a cached base (``adapters.use_adapter``) rather than loading a second copy.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_SIZE = 2


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    load_seconds: float = 0.0


def load_pipeline(path: Path, *, device: str, dtype: Any) -> Any:
    """Load a diffusers pipeline folder onto ``device`` in ``dtype`` (the class comes from its
    ``model_index.json``: StableDiffusionPipeline, StableDiffusionXLPipeline, ...). A GLIGEN
    checkpoint is served as the Stable Diffusion pipeline of its modules, whose UNet takes the
    layout (``grounding``): diffusers' own GLIGEN pipeline is deprecated and one layout a call."""
    from diffusers import DiffusionPipeline, StableDiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(str(path), dtype=dtype)
    if type(pipe).__name__ == "StableDiffusionGLIGENPipeline":
        pipe = StableDiffusionPipeline.from_pipe(pipe)
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


class PipelineCache:
    """LRU of loaded pipelines. Thread-safe; one load at a time per process (loads are memory
    peaks, and a GPU worker runs one task at a time anyway)."""

    def __init__(self, max_size: int = DEFAULT_SIZE) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self.stats = CacheStats()
        self._entries: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
        self._lock = threading.RLock()

    @staticmethod
    def key(base_path: Path, *, device: str, dtype: Any) -> tuple[str, str, str]:
        return (str(Path(base_path).resolve()), str(device), str(dtype))

    def __contains__(self, key: tuple[str, str, str]) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def cached_keys(self) -> list[tuple[str, str, str]]:
        """Cached keys, least recently used first."""
        return list(self._entries)

    def get(self, base_path: Path, *, device: str, dtype: Any) -> Any:
        key = self.key(base_path, device=device, dtype=dtype)
        with self._lock:
            pipe = self._entries.get(key)
            if pipe is not None:
                self._entries.move_to_end(key)
                self.stats.hits += 1
                return pipe
            self.stats.misses += 1
            while len(self._entries) >= self.max_size:
                self._evict_oldest()
            started = time.perf_counter()
            pipe = load_pipeline(Path(key[0]), device=device, dtype=dtype)
            elapsed = time.perf_counter() - started
            self.stats.load_seconds += elapsed
            logger.info(
                "pipeline cache: loaded %s on %s/%s in %.2fs", key[0], device, dtype, elapsed
            )
            self._entries[key] = pipe
            return pipe

    def resize(self, max_size: int) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        with self._lock:
            self.max_size = max_size
            while len(self._entries) > self.max_size:
                self._evict_oldest()

    def clear(self) -> None:
        with self._lock:
            while self._entries:
                self._evict_oldest()

    def _evict_oldest(self) -> None:
        key, pipe = self._entries.popitem(last=False)
        self.stats.evictions += 1
        logger.info("pipeline cache: evicted %s (%s/%s)", *key)
        device = key[1]
        del pipe
        gc.collect()
        if device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


_default: PipelineCache | None = None
_default_lock = threading.Lock()


def default_cache(max_size: int | None = None) -> PipelineCache:
    """The process-wide cache. The worker passes its configured size
    (``EASEL_PIPELINE_CACHE_SIZE``) on first use; a later different size resizes it."""
    global _default
    with _default_lock:
        if _default is None:
            _default = PipelineCache(max_size or DEFAULT_SIZE)
        elif max_size is not None and max_size != _default.max_size:
            _default.resize(max_size)
        return _default
