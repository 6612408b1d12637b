"""Local files: atomic writes for downloads, photo folders and readers that report upload
progress."""

from __future__ import annotations

import io
import mimetypes
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def write_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` so that the file is either whole or absent."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def photos_in(folder: str | os.PathLike[str]) -> list[Path]:
    """The PNG, JPEG and WebP files directly in ``folder``, by name."""
    path = Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder of photos.")
    found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
    if not found:
        raise FileNotFoundError(f"No .png, .jpg or .webp photos in {path}.")
    return found


def content_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


class ProgressReader(io.BytesIO):
    """Bytes that call ``on_read(n)`` as the HTTP client reads them (to drive a progress bar).
    A rewind to the start (a retry re-sends the body) reports ``-bytes already read``."""

    def __init__(self, data: bytes, on_read: Callable[[int], None] | None) -> None:
        super().__init__(data)
        self._on_read = on_read
        self._sent = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        if chunk and self._on_read is not None:
            self._sent += len(chunk)
            self._on_read(len(chunk))
        return chunk

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if offset == 0 and whence == io.SEEK_SET and self._sent and self._on_read is not None:
            self._on_read(-self._sent)
            self._sent = 0
        return super().seek(offset, whence)
