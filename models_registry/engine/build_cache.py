"""Build-once cache for generated base models, kept outside the repository.

A build is stored at `<cache_root>/<kind>-<key[:16]>/`, where the key is the SHA-256 of the
config (canonical JSON), the source of every engine module the build runs, the vendored BPE
file and the torch/diffusers/transformers versions. Change any of them and the next call
builds afresh; otherwise the finished folder is reused. A file lock keeps two processes from
training the same model at once; the folder itself appears atomically.
"""

from __future__ import annotations

import fcntl
import hashlib
from pathlib import Path

from models_registry.engine.gligen import ShapesGligenConfig, build_shapes_gligen_pipeline
from models_registry.engine.shapes_train import (
    ProgressCallback,
    ShapesConfig,
    build_shapes_pipeline,
)

BuildConfig = ShapesConfig | ShapesGligenConfig

_ENGINE_DIR = Path(__file__).resolve().parent
# Files whose content determines a shapes build.
SHAPES_BUILD_SOURCES: tuple[str, ...] = (
    "atomic_dir.py",
    "build_cache.py",
    "shapes_data.py",
    "shapes_report.py",
    "shapes_train.py",
    "tokenizer.py",
    "data/bpe_simple_vocab_16e6.txt.gz",
)
# A grounded build also depends on its base's sources (the base config is part of its own).
SOURCES_BY_KIND: dict[str, tuple[str, ...]] = {
    "shapes": SHAPES_BUILD_SOURCES,
    "shapes-gligen": (*SHAPES_BUILD_SOURCES, "gligen.py"),
}
_FINISHED_MARKER = "build.json"


def default_cache_root() -> Path:
    """`~/.cache/easel/models`, the cache root when the caller's settings name none."""
    return Path.home() / ".cache" / "easel" / "models"


def build_key(config: BuildConfig) -> str:
    """SHA-256 (hex) of the config, the engine sources involved and the library versions."""
    import diffusers
    import torch
    import transformers

    digest = hashlib.sha256()
    digest.update(config.kind.encode())
    digest.update(b"\0config\0" + config.to_json().encode())
    for name in SOURCES_BY_KIND[config.kind]:
        digest.update(b"\0source\0" + name.encode() + b"\0")
        digest.update((_ENGINE_DIR / name).read_bytes())
    versions = ";".join(f"{m.__name__}={m.__version__}" for m in (torch, diffusers, transformers))
    digest.update(b"\0versions\0" + versions.encode())
    return digest.hexdigest()


def cached_build_path(config: BuildConfig, cache_root: Path) -> Path:
    """Where the build for `config` lives (or will live) under `cache_root`."""
    return Path(cache_root).expanduser() / f"{config.kind}-{build_key(config)[:16]}"


def cached_build(
    config: BuildConfig,
    cache_root: Path,
    progress: ProgressCallback | None = None,
) -> Path:
    """Return the pipeline folder for `config`, building it first if the cache lacks it (a
    grounded build first gets its base the same way)."""
    target = cached_build_path(config, cache_root)
    if (target / _FINISHED_MARKER).is_file():
        return target
    base_dir = None
    if isinstance(config, ShapesGligenConfig):
        base_dir = cached_build(config.base, cache_root, progress)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building the same model
        try:
            if not (target / _FINISHED_MARKER).is_file():
                if base_dir is not None:
                    build_shapes_gligen_pipeline(config, base_dir, target, progress, replace=False)
                else:
                    build_shapes_pipeline(config, target, progress, replace=False)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return target
