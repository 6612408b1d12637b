"""Fixtures for the Django-free engine tests: offline Hugging Face hubs and a shared tiny model."""

import os

# Nothing in these tests may reach the network; set before diffusers/transformers are imported.
os.environ["HF_HUB_OFFLINE"] = "1"
# OpenMP threads that sleep instead of spinning while idle: on a shared two-core machine spinning
# threads slow training 2-3x under contention; results are unchanged. Read when torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _two_cpu_threads() -> Iterator[None]:
    """The CI and dev machines have two cores; more threads only add contention."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from models_registry.engine.tiny import build_tiny_pipeline

    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny") / "tiny", seed=0)
