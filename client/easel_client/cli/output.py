"""What the CLI prints: results on stdout (JSON with ``--json``), errors and progress on stderr.

With ``--json``, stdout holds exactly one JSON document (the API's own representation of the
result) and nothing else; progress bars are never drawn; an error is one JSON line on stderr:
``{"error": {"status", "code", "message", "fields"}}``. Progress bars are drawn only when stderr
is a terminal, so a log file never fills with them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

Update = Callable[..., None]


class Output:
    def __init__(self, *, json_mode: bool, quiet: bool) -> None:
        self.json_mode = json_mode
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.show_progress = not json_mode and not quiet and self.err.is_terminal

    def result(self, document: Any, human: Callable[[], None]) -> None:
        """Print ``document`` as JSON with ``--json``, else call ``human`` to describe it."""
        if self.json_mode:
            sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False, default=str))
            sys.stdout.write("\n")
            sys.stdout.flush()
        else:
            human()

    def line(self, text: str) -> None:
        self.out.print(text, markup=False)

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Aligned columns, never truncated or wrapped: an id is copied whole from a terminal
        and ``awk '{print $1}'`` works on a pipe."""
        cells = [list(columns), *[["" if v is None else str(v) for v in row] for row in rows]]
        widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
        for row in cells:
            line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            self.out.print(line.rstrip(), markup=False, overflow="ignore", crop=False)

    def error(self, message: str, *, code: str, status: int | None = None, **extra: Any) -> None:
        if self.json_mode:
            body = {"status": status, "code": code, "message": message, **extra}
            sys.stderr.write(json.dumps({"error": body}, ensure_ascii=False, default=str) + "\n")
            return
        where = f" (HTTP {status})" if status else ""
        self.err.print(f"easel: error: {code}: {message}{where}", markup=False)
        for name, problem in (extra.get("fields") or {}).items():
            self.err.print(f"  {name}: {problem}", markup=False)

    def note(self, text: str) -> None:
        """A human remark on stderr (never in ``--json`` output)."""
        if not self.json_mode:
            self.err.print(text, markup=False)

    @contextmanager
    def progress(self, description: str, total: float | None = None) -> Iterator[Update]:
        """``with out.progress("Generating", total=1) as update: update(completed=0.5)``."""
        if not self.show_progress:
            yield lambda **_: None
            return
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.err) as bar:
            task = bar.add_task(description, total=total)
            yield lambda **fields: bar.update(task, **fields)
