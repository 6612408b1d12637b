"""Fixtures for the tests of the Django-free engine (``models_registry/engine``): two CPU threads
and a tiny model of their own. The offline hub and passive OpenMP threads are set up by
tests/conftest.py, before torch is imported."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch


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
