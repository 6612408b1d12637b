"""The README's prompt-following table of the ``shapes`` model, one row per build seed.

``manage.py build_shapes_model --readme`` writes it between ``BEGIN`` and ``END`` from a report's
``to_dict()``: the row of the seed it built is added or replaced, the other seeds' rows stay as
long as they describe today's recipe (their cache folder is the one that seed would build now).
A row of another recipe (older engine code, config or library versions) is dropped, since its
figures no longer describe what ``manage.py build_shapes_model --seed N`` makes. Plain text in
and out: nothing here loads Django or torch.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from models_registry.engine.shapes_report import CAPTIONS

BEGIN = "<!-- shapes-report:begin -->"
END = "<!-- shapes-report:end -->"
DEMO_TEMPLATES_SET = "demo templates"  # the report's prompt set of the demo templates
HEADER = (
    "| build seed | colour | background | shape | per colour | per shape "
    "| training captions (colour / background / shape) "
    "| demo templates (colour / background / shape) | build | cache folder |"
)
_SEPARATOR = "|---|---|---|---|---|---|---|---|---|---|"
_ROW_SEED = re.compile(r"^\|\s*(\d+)\b")
_ROW_FOLDER = re.compile(r"`([a-z]+-[0-9a-f]{16})`")


def _by_name(accuracies: Mapping[str, float]) -> str:
    return ", ".join(f"{name} {accuracy:.2f}" for name, accuracy in accuracies.items())


def _set_cell(report: Mapping[str, Any], name: str) -> str:
    figures = report.get("prompt_sets", {}).get(name)
    if not figures:
        return "—"
    return " / ".join(
        f"{figures[key]:.3f}"
        for key in ("colour_accuracy", "background_accuracy", "shape_accuracy")
    )


def report_row(
    report: Mapping[str, Any],
    *,
    seed: int,
    default_seed: int,
    build_seconds: float,
    folder: str,
) -> str:
    """The table row of one build: ``report`` is ``ShapesReport.to_dict()``."""
    cells = [
        f"{seed} (default)" if seed == default_seed else str(seed),
        f"{report['colour_accuracy']:.3f}",
        f"{report['background_accuracy']:.3f}",
        f"{report['shape_accuracy']:.3f}",
        _by_name(report["colour_accuracy_by_colour"]),
        _by_name(report["shape_accuracy_by_shape"]),
        _set_cell(report, CAPTIONS),
        _set_cell(report, DEMO_TEMPLATES_SET),
        f"{build_seconds:.0f} s",
        f"`{folder}`",
    ]
    return "| " + " | ".join(cells) + " |"


def intro(report: Mapping[str, Any]) -> str:
    """The sentence above the table: what was asked, how many images, where it ran."""
    sets = report.get("prompt_sets", {})
    asked = " and ".join(
        f"{name} ({figures['num_prompts']} prompts)" for name, figures in sets.items()
    )
    seeds = report.get("settings", {}).get("num_seeds")
    each = f", {seeds} seeds each" if seeds else ""
    return (
        "Prompt-following report, written by `manage.py build_shapes_model --report --readme` "
        "(`--seed N --no-register` adds or replaces that build seed's row): "
        f"{asked or 'the training captions'}{each}, {report['num_images']} distinct images; the "
        "first columns are over all of them. Build times on this 2-core machine."
    )


def readme_with_row(
    text: str,
    *,
    seed: int,
    row: str,
    intro_text: str,
    folder_for_seed: Callable[[int], str],
) -> tuple[str, list[int]]:
    """``text`` with the block between the markers rewritten: ``row`` for ``seed``, other seeds'
    rows kept while ``folder_for_seed(seed)`` still names their cache folder.

    Returns the new text and the seeds whose rows were dropped. Raises ``ValueError`` when the
    markers are missing.
    """
    start, stop = text.find(BEGIN), text.find(END)
    if start < 0 or stop < start:
        raise ValueError(
            f"the README has no {BEGIN} … {END} block; put the two markers, each on its own "
            "line, where the prompt-following table goes"
        )
    rows: dict[int, str] = {}
    for line in text[start + len(BEGIN) : stop].splitlines():
        found = _ROW_SEED.match(line)
        if found:
            rows[int(found[1])] = line
    dropped = []
    for other, line in list(rows.items()):
        folder = _ROW_FOLDER.search(line)
        if other != seed and (folder is None or folder[1] != folder_for_seed(other)):
            dropped.append(other)
            del rows[other]
    rows[seed] = row
    block = [BEGIN, intro_text, "", HEADER, _SEPARATOR, *(rows[s] for s in sorted(rows)), "", END]
    return text[:start] + "\n".join(block) + text[stop + len(END) :], sorted(dropped)
