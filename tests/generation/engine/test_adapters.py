"""LoRA adapters on a warm base: the same version and seed give the same image after a cold load,
switching A→B→A reproduces A without reloading the base, and a full adapter slot is reused.
Runs real tiny pipelines on CPU (64×64, 2 steps)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from generation.engine.adapters import adapter_state, use_adapter
from generation.engine.cache import PipelineCache
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
