"""Worker fixtures: the tiny pipeline loaded once, a stand-in for the pipeline cache that yields it
(or a wrapper of it that fails like a GPU would, or whose images a test draws), and enqueues
recorded instead of sent."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest

from generation import running
from tests.chat_server import chat_server  # noqa: F401 (a fixture: the judges' HTTP peer)


@pytest.fixture(scope="session")
def tiny_pipe(tiny_pipeline_dir):  # type: ignore[no-untyped-def]
    import torch
    from diffusers import StableDiffusionPipeline

    torch.set_num_threads(2)
    return StableDiffusionPipeline.from_pretrained(tiny_pipeline_dir)


class ScriptedPipeline:
    """The real pipeline call, whose images are then replaced by what ``draw(prompt, seed)``
    returns (an (H, W, 3) uint8 array): a model whose outputs a test decides, so the quality
    gate downstream (checks, refinement, attempts) runs for real on known images."""

    def __init__(self, pipe: Any, draw: Callable[[str, int], Any]) -> None:
        object.__setattr__(self, "_pipe", pipe)
        object.__setattr__(self, "_draw", draw)
        object.__setattr__(self, "calls", [])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from PIL import Image

        prompts = list(kwargs["prompt"])
        seeds = [int(g.initial_seed()) for g in kwargs["generator"]]
        self.calls.append(list(zip(prompts, seeds, strict=True)))
        output = self._pipe(*args, **kwargs)
        output.images = [
            Image.fromarray(self._draw(prompt, seed))
            for prompt, seed in zip(prompts, seeds, strict=True)
        ]
        return output

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipe, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._pipe, name, value)


class FaultyPipeline:
    """The real pipeline, except that a call whose prompts ``fails_on`` refuses raises its error
    first, as CUDA or a tokenizer would. Records the prompts of every call."""

    def __init__(self, pipe: Any, fails_on: Callable[[list[str]], BaseException | None]) -> None:
        object.__setattr__(self, "_pipe", pipe)
        object.__setattr__(self, "_fails_on", fails_on)
        object.__setattr__(self, "calls", [])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        prompts = list(kwargs["prompt"])
        self.calls.append(prompts)
        error = self._fails_on(prompts)
        if error is not None:
            raise error
        return self._pipe(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipe, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._pipe, name, value)


@pytest.fixture
def local_pipeline(tiny_pipe, settings):  # type: ignore[no-untyped-def]
    """``running.pipeline_for`` yields the tiny pipeline; ``local_pipeline.fail_when(fn)`` wraps
    it in a ``FaultyPipeline`` and returns that."""
    settings.EASEL_CANCEL_POLL_SECONDS = 0  # look for cancels after every step
    settings.EASEL_WORKER_DRAIN_SECONDS = 0  # one task, one batch (drain has its own test)
    current = {"pipe": tiny_pipe}

    @contextlib.contextmanager
    def stand_in(job):  # type: ignore[no-untyped-def]
        yield current["pipe"]

    class Control:
        def fail_when(
            self, fails_on: Callable[[list[str]], BaseException | None]
        ) -> FaultyPipeline:
            current["pipe"] = FaultyPipeline(tiny_pipe, fails_on)
            return current["pipe"]

        def draw_with(self, draw: Callable[[str, int], Any]) -> ScriptedPipeline:
            current["pipe"] = ScriptedPipeline(tiny_pipe, draw)
            return current["pipe"]

    with mock.patch.object(running, "pipeline_for", stand_in):
        yield Control()


@pytest.fixture
def enqueued():  # type: ignore[no-untyped-def]
    sent: list[str] = []
    with mock.patch(
        "generation.tasks.enqueue_generation",
        side_effect=lambda *, job, countdown=None: sent.append(str(job.id)),
    ):
        yield sent


@pytest.fixture
def produce_lora(owner, tiny_base_model, lora_factory):  # type: ignore[no-untyped-def]
    """A `produce` category whose production alias is a LoRA version on the tiny base."""
    from models_registry import services as registry
    from models_registry.models import VersionKind

    category = registry.category_create(
        actor=owner.principal, slug="produce", name="Produce", base_model=tiny_base_model
    )
    version = registry.model_version_register(
        actor=owner.principal,
        category=category,
        base=tiny_base_model,
        kind=VersionKind.LORA,
        source_path=lora_factory(seed=3),
    )
    registry.alias_promote(actor=owner.principal, category=category, version=version)
    return version


WORKER_JOB = {"prompt": "a red apple", "model": "tiny", "steps": 2, "seed": 11}


@pytest.fixture
def submit(owner, tiny_base_model, enqueued):  # type: ignore[no-untyped-def]
    """``submit(priority=..., **params)``: a tiny-model job created by the real service, its
    message recorded by ``enqueued`` instead of sent (worker tests run it in-process)."""
    from generation import services
    from generation.models import JobPriority

    def make(priority: str = JobPriority.INTERACTIVE, **overrides):  # type: ignore[no-untyped-def]
        return services.generation_job_create(
            actor=owner.principal, data=WORKER_JOB | overrides, priority=priority
        )

    return make
