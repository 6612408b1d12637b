"""The worker-side engine: device/dtype choice, the pipeline LRU, and LoRA switching on a warm
base. Runs real tiny pipelines on CPU (64×64, 2 steps)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from generation.engine import cache as cache_module
from generation.engine.adapters import adapter_state, use_adapter
from generation.engine.cache import PipelineCache, default_cache
from generation.engine.device import select_device, select_dtype
from models_registry import services
from models_registry.artifacts import materialize_base, materialize_version

torch = pytest.importorskip("torch")


def _image(pipe, *, seed: int = 7) -> np.ndarray:  # type: ignore[no-untyped-def]
    generator = torch.Generator("cpu").manual_seed(seed)
    out = pipe(
        "a red apple on a white table",
        num_inference_steps=2,
        guidance_scale=5.0,
        height=64,
        width=64,
        generator=generator,
        output_type="np",
    )
    return out.images[0]


def test_cpu_is_chosen_without_a_gpu_and_runs_in_fp32():
    assert select_device("cpu") == "cpu"
    assert select_dtype("cpu") == torch.float32
    assert select_dtype("cpu", "bf16") == torch.bfloat16
    if not torch.cuda.is_available():
        assert select_device(None) == "cpu" and select_device("auto") == "cpu"
        with pytest.raises(RuntimeError, match="no CUDA device is visible"):
            select_device("cuda")
    else:
        assert select_device("auto") == "cuda"
        assert select_dtype("cuda") in (torch.float16, torch.bfloat16)
    with pytest.raises(ValueError, match="Unknown device"):
        select_device("tpu")


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


@pytest.mark.django_db
def test_same_seed_and_version_give_bit_identical_images_on_cpu(
    owner, tiny_base_model, lora_factory
):
    category = services.category_create(
        actor=owner.principal, slug="produce", name="Produce", base_model=tiny_base_model
    )
    version = services.model_version_register(
        actor=owner.principal,
        category=category,
        base=tiny_base_model,
        kind="lora",
        source_path=lora_factory(seed=3),
    )
    base_dir, lora_dir = materialize_base(tiny_base_model), materialize_version(version)
    images = []
    for _ in range(2):  # two cold loads, as two workers would do
        pipe = PipelineCache(1).get(base_dir, device="cpu", dtype=torch.float32)
        use_adapter(pipe, lora_path=lora_dir, adapter_name=f"v{version.pk}")
        images.append(_image(pipe, seed=11))
    assert np.array_equal(images[0], images[1])
    assert not np.array_equal(images[0], _image(pipe, seed=12))


def test_switching_lora_a_b_a_on_a_warm_base_reproduces_a_and_beats_reloading(
    tiny_pipeline_dir, lora_factory, capsys
):
    lora_a, lora_b = lora_factory(seed=1), lora_factory(seed=2)
    cache = PipelineCache(1)
    pipe = cache.get(tiny_pipeline_dir, device="cpu", dtype=torch.float32)
    plain = _image(pipe)
    use_adapter(pipe, lora_path=lora_a, adapter_name="A")
    image_a = _image(pipe)
    use_adapter(pipe, lora_path=lora_b, adapter_name="B")
    image_b = _image(pipe)

    started = time.perf_counter()
    use_adapter(pipe, lora_path=lora_a, adapter_name="A")
    switch_seconds = time.perf_counter() - started
    image_a_again = _image(pipe)
    with use_adapter(pipe, lora_path=None, adapter_name=None) as same_pipe:
        assert same_pipe is pipe
        image_none = _image(pipe)

    cache.clear()
    started = time.perf_counter()
    reloaded = cache.get(tiny_pipeline_dir, device="cpu", dtype=torch.float32)
    use_adapter(reloaded, lora_path=lora_a, adapter_name="A")
    reload_seconds = time.perf_counter() - started
    image_a_reloaded = _image(reloaded)

    assert not np.array_equal(image_a, plain) and not np.array_equal(image_a, image_b)
    assert np.array_equal(image_a_again, image_a)
    assert np.array_equal(image_a_reloaded, image_a)
    assert np.array_equal(image_none, plain)
    assert adapter_state(pipe).loads == 2, "A and B are each loaded once"
    with capsys.disabled():
        print(
            f"\n[lora switch] warm base B→A: {switch_seconds * 1000:.1f} ms; "
            f"reload base + load A: {reload_seconds * 1000:.1f} ms"
        )


def test_a_full_adapter_slot_is_reused_and_other_ranks_fall_back_to_a_fresh_load(
    tiny_pipeline_dir, lora_factory
):
    lora_a, lora_b, lora_wide = (
        lora_factory(seed=1),
        lora_factory(seed=2),
        lora_factory(seed=4, rank=8),
    )
    reference = PipelineCache(1).get(tiny_pipeline_dir, device="cpu", dtype=torch.float32)
    use_adapter(reference, lora_path=lora_b, adapter_name="B")
    expected_b = _image(reference)
    use_adapter(reference, lora_path=lora_wide, adapter_name="W")
    expected_wide = _image(reference)

    pipe = PipelineCache(1).get(tiny_pipeline_dir, device="cpu", dtype=torch.float32)
    use_adapter(pipe, lora_path=lora_a, adapter_name="A", max_loaded=1)
    use_adapter(pipe, lora_path=lora_b, adapter_name="B", max_loaded=1)
    assert np.array_equal(_image(pipe), expected_b)
    use_adapter(pipe, lora_path=lora_wide, adapter_name="W", max_loaded=1)
    assert np.array_equal(_image(pipe), expected_wide)
    state = adapter_state(pipe)
    assert list(state.slots) == ["W"]
    assert len({a for names in pipe.get_list_adapters().values() for a in names}) == 1
