"""``manage.py build_shapes_model --report``: the prompt-following figures it prints, the contact
sheet it writes and the README rows it keeps, one per build seed.

The quick tests train a three-step model into a temporary cache (seconds) and sample it with two
steps; only the last test uses the default build (``default_shapes_build``: ~10 minutes the first
time after an engine change, then cached and shared with tests/registry/engine/).
"""

from __future__ import annotations

import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from PIL import Image

from models_registry import shapes_readme
from models_registry.engine.shapes_data import COLOUR_NAMES, SHAPES
from models_registry.models import BaseModel

from .conftest import QUICK_SHAPES

pytestmark = pytest.mark.django_db

QUICK = QUICK_SHAPES | {"sample_steps": 2}
QUICK_ARGS = [f"--set={key}={value}" for key, value in QUICK.items()]
README = Path(django_settings.BASE_DIR) / "README.md"


def _run(*args: str | Path) -> str:
    out = StringIO()
    call_command("build_shapes_model", *map(str, args), stdout=out)
    return out.getvalue()


@pytest.fixture(scope="module")
def quick_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("builds")


@pytest.fixture
def build_cache(settings, quick_cache: Path) -> Path:  # type: ignore[no-untyped-def]
    settings.EASEL_BUILD_CACHE_DIR = quick_cache
    return quick_cache


def _assert_report_lines(out: str) -> None:
    assert "images: colour " in out
    per_colour = next(line for line in out.splitlines() if "per colour:" in line)
    assert all(f"{name} " in per_colour for name in COLOUR_NAMES)
    per_shape = next(line for line in out.splitlines() if "per shape:" in line)
    assert all(f"{name} " in per_shape for name in SHAPES)
    assert "  training captions, 144 images: colour " in out
    assert "  demo templates, 144 images: colour " in out


def _assert_sheet(path: Path, native_size: int) -> None:
    with Image.open(path) as sheet:
        sheet.load()
        width, height = sheet.size
    tile = 2 * native_size  # 6 colour rows; 6 shape × background groups of 4 seeds
    assert 24 * tile <= width < 2 * 24 * tile and 6 * tile <= height < 2 * 6 * tile


def test_report_prints_totals_per_colour_per_shape_and_per_prompt_set(build_cache, tmp_path):
    sheet = tmp_path / "sheet.png"
    out = _run(*QUICK_ARGS, "--report", "--contact-sheet", sheet)
    assert "Base model 'shapes' is ready" in out
    _assert_report_lines(out)
    assert out.index("images: colour ") < out.index("per colour:") < out.index("per shape:")
    _assert_sheet(
        sheet, native_size=BaseModel.objects.get(name="shapes").default_params["native_size"]
    )


def test_a_report_without_registering_leaves_the_served_model_and_the_docs_sheet(
    build_cache, tmp_path
):
    docs_sheet = Path(django_settings.BASE_DIR) / "docs" / "shapes-model.png"
    before = docs_sheet.read_bytes() if docs_sheet.exists() else None
    out = _run(*QUICK_ARGS, "--seed", "3", "--report", "--no-register")
    assert "The shapes build is ready in" in out
    _assert_report_lines(out)
    assert "No contact sheet: docs/shapes-model.png shows the default build" in out
    assert not BaseModel.objects.filter(name="shapes").exists()
    assert (docs_sheet.read_bytes() if docs_sheet.exists() else None) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--readme", "--set=unet_steps=3"], "--readme records the default recipe"),
        (["--seed", "2", "--set=seed=3"], "--seed and --set seed= disagree"),
        (["--report", "--background"], "--report runs in the foreground"),
    ],
)
def test_contradictory_options_are_refused_before_anything_is_built(build_cache, args, message):
    with pytest.raises(CommandError, match=message):
        _run(*args)
    assert not BaseModel.objects.filter(name="shapes").exists()


def test_readme_without_the_markers_is_refused_before_anything_is_built(build_cache, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# No table here\n")
    with pytest.raises(CommandError, match="has no <!-- shapes-report:begin -->"):
        _run("--readme", "--readme-path", readme)
    assert not BaseModel.objects.filter(name="shapes").exists()


def test_project_readme_has_one_report_block() -> None:
    text = README.read_text()
    assert text.count(shapes_readme.BEGIN) == 1 and text.count(shapes_readme.END) == 1
    assert text.index(shapes_readme.BEGIN) < text.index(shapes_readme.END)


def test_report_on_the_default_build_rewrites_its_readme_row_and_the_sheet(
    default_shapes_build, settings, tmp_path
):
    settings.EASEL_BUILD_CACHE_DIR = default_shapes_build.parent
    readme = tmp_path / "README.md"
    shutil.copy(README, readme)
    before = readme.read_text()
    sheet = tmp_path / "shapes-model.png"
    out = _run("--report", "--readme", "--readme-path", readme, "--contact-sheet", sheet)
    _assert_report_lines(out)
    assert f"README: wrote the row of build seed 0 in {readme}" in out

    after = readme.read_text()
    start, stop = after.index(shapes_readme.BEGIN), after.index(shapes_readme.END)
    assert after[:start] == before[: before.index(shapes_readme.BEGIN)]
    assert after[stop:] == before[before.index(shapes_readme.END) :]
    rows = [line for line in after[start:stop].splitlines() if line.startswith("| 0 (default) |")]
    assert len(rows) == 1 and f"`{default_shapes_build.name}`" in rows[0]
    assert shapes_readme.HEADER in after[start:stop]
    native_size = BaseModel.objects.get(name="shapes").default_params["native_size"]
    _assert_sheet(sheet, native_size=native_size)
