"""The per-process pipeline cache: LRU by (folder, device, dtype), one default per process."""

from __future__ import annotations

import pytest

from generation.engine import cache as cache_module
from generation.engine.cache import PipelineCache, default_cache

torch = pytest.importorskip("torch")


def test_pipeline_cache_is_lru_by_path_device_and_dtype(monkeypatch, tmp_path):
    loads: list[tuple[str, str, object]] = []

    def fake_load(path, *, device, dtype):  # type: ignore[no-untyped-def]
        loads.append((path.name, device, dtype))
        return object()

    monkeypatch.setattr(cache_module, "load_pipeline", fake_load)
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    cache = PipelineCache(max_size=2)
    a = cache.get(tmp_path / "a", device="cpu", dtype=torch.float32)
    cache.get(tmp_path / "b", device="cpu", dtype=torch.float32)
    assert cache.get(tmp_path / "a" / ".." / "a", device="cpu", dtype=torch.float32) is a
    cache.get(tmp_path / "c", device="cpu", dtype=torch.float32)  # evicts b, the LRU
    assert [k[0].rsplit("/", 1)[1] for k in cache.cached_keys()] == ["a", "c"]
    cache.get(tmp_path / "a", device="cpu", dtype=torch.bfloat16)  # another dtype: another entry
    assert len(loads) == 4 and cache.stats.hits == 1 and cache.stats.evictions == 2
    assert default_cache() is default_cache()
