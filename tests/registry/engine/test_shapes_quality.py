"""The full `shapes` model follows prompts: colour and background. (Its build time is a figure
the build records and ``build_shapes_model --report`` prints, not a test: speed is measured, not
asserted.)

The default config is built once per machine (``default_shapes_build`` in tests/registry/
conftest.py: cached under ~/.cache/easel/models, keyed by config + engine source), so only the
first run of the suite after a change pays the ~9-minute build.
"""

from pathlib import Path

import pytest

from models_registry.engine.shapes_data import BACKGROUND_NAMES, COLOUR_NAMES
from models_registry.engine.shapes_report import (
    REPORT_SEEDS,
    ShapesReport,
    evaluate_shapes_pipeline,
)
from models_registry.engine.shapes_train import read_build_info


@pytest.fixture(scope="module")
def report(default_shapes_build: Path) -> ShapesReport:
    return evaluate_shapes_pipeline(default_shapes_build, seeds=REPORT_SEEDS)


def test_autoencoder_reconstructs_product_colours(default_shapes_build: Path) -> None:
    # The VAE bounds colour fidelity: fresh shots it encodes and decodes keep their colour.
    assert read_build_info(default_shapes_build)["metrics"]["vae_colour_accuracy"] >= 0.95


def test_report_covers_six_colours_two_backgrounds_four_seeds(report: ShapesReport) -> None:
    assert len(COLOUR_NAMES) >= 6 and len(BACKGROUND_NAMES) == 2 and len(REPORT_SEEDS) >= 4
    asked = {(v.colour, v.background, v.seed) for v in report.verdicts}
    assert len(asked) >= 6 * 2 * 4


def test_generated_products_have_the_colour_asked(report: ShapesReport) -> None:
    assert report.colour_accuracy >= 0.85, report.summary()


def test_generated_shots_have_the_background_asked(report: ShapesReport) -> None:
    assert report.background_accuracy >= 0.95, report.summary()
