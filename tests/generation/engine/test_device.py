"""Device and dtype choice for the worker's pipelines: CPU in fp32 without a GPU, CUDA when seen."""

from __future__ import annotations

import pytest

from generation.engine.device import select_device, select_dtype

torch = pytest.importorskip("torch")


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
