"""Operations tests share the worker fixtures (the tiny pipeline stand-in, recorded enqueues, a
category with a production LoRA) and the integration tests' isolated broker."""

import pytest

from tests.generation.conftest import (  # noqa: F401 (fixtures)
    enqueued,
    local_pipeline,
    produce_lora,
    tiny_pipe,
)
from tests.integration.test_generation_e2e import isolated_broker  # noqa: F401 (a fixture)


@pytest.fixture
def sd15_base_model(tiny_base_model):  # type: ignore[no-untyped-def]
    """The tiny weights registered a second time as an ``sd15``-family model (256×256, the
    family's smallest size): a job of another GPU class that still runs in a second on CPU."""
    from models_registry.builtin import ensure_tiny_pipeline
    from models_registry.services import base_model_register

    return base_model_register(
        name="tiny-as-sd15",
        family="sd15",
        source_path=ensure_tiny_pipeline(),
        default_params={"width": 256, "height": 256, "steps": 2},
    )
