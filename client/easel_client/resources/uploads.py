"""``client.uploads``: images to vary (img2img, inpaint sources) and inpainting masks."""

from __future__ import annotations

import os
from pathlib import Path

from .._files import content_type
from .._http import HTTPClient
from ..types import Upload, from_api


class Uploads:
    def __init__(self, http: HTTPClient) -> None:
        self._http = http

    def create(
        self, image: str | os.PathLike[str] | tuple[str, bytes], *, kind: str = "image"
    ) -> Upload:
        """Upload a PNG, JPEG or WebP file (a path, or a ``(name, bytes)`` pair) as a source
        (``kind="image"``) or a mask (``kind="mask"``, white repaints); pass its ``id`` to
        ``generations.create`` as ``source_upload`` or ``mask_upload``. A refused file is a
        ``ValidationError`` whose ``fields["file"]`` says why."""
        if isinstance(image, tuple):
            name, data = image
        else:
            path = Path(image)
            name, data = path.name, path.read_bytes()
        response = self._http.request(
            "POST",
            "uploads",
            data={"kind": kind},
            files=[("file", (name, data, content_type(name)))],
        )
        return from_api(Upload, response.json())

    def get(self, upload_id: str) -> Upload:
        return from_api(Upload, self._http.get_json(f"uploads/{upload_id}"))
