"""Write a model folder atomically: build into a hidden staging folder, then rename it into place.

A reader (a worker loading the pipeline, a second builder) never sees a half-written folder:
either the final path is absent, or it holds a complete build.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_directory(final_dir: Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder next to `final_dir`; on success rename it to `final_dir`.

    If `final_dir` already exists when the block ends: with `replace`, the old folder is swapped
    out and deleted; without it, the existing folder wins (another builder finished first) and
    the staging folder is discarded. On error the staging folder is removed and nothing changes.
    """
    final_dir = Path(final_dir)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{final_dir.name}.", suffix=".partial", dir=final_dir.parent)
    )
    try:
        yield staging
        if final_dir.exists():
            if not replace:
                shutil.rmtree(staging)
                return
            retired = Path(
                tempfile.mkdtemp(prefix=f".{final_dir.name}.", suffix=".old", dir=final_dir.parent)
            )
            os.replace(final_dir, retired / "previous")
            os.replace(staging, final_dir)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, final_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
