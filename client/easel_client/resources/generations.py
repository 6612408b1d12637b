"""``client.generations``: create, get, list, cancel, wait and download images."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._files import write_atomically
from .._http import HTTPClient, Pages
from .._waiting import wait_for_job
from ..errors import EaselError
from ..types import Generation, Image, from_api

# The unified parameter protocol's fields (README "Unified parameter protocol").
PROTOCOL_FIELDS = (
    "model",
    "category",
    "template",
    "template_version",
    "variables",
    "negative_prompt",
    "style",
    "width",
    "height",
    "aspect_ratio",
    "cfg_scale",
    "steps",
    "seed",
    "num_images",
    "scheduler",
    "priority",
    "layout",
    "mode",
    "strength",
    "source_image",
    "source_upload",
    "mask_upload",
    "feather",
)


class Generations:
    def __init__(self, http: HTTPClient) -> None:
        self._http = http

    def create(
        self,
        prompt: str | None = None,
        *,
        wait: int | None = None,
        idempotency_key: str | None = None,
        **params: Any,
    ) -> Generation:
        """Submit a job (``POST /generations``); returns it queued, or finished when ``wait``
        (≤ 60 s, the server's ``Prefer: wait``) was enough.

        ``params`` are the protocol's fields: ``model``, ``category``, ``template``,
        ``variables``, ``steps``, ``seed``, ``num_images``, ``width``/``height``... An
        ``Idempotency-Key`` is made for the call (or pass your own to deduplicate across
        processes) and sent on every retry, so a retried create never makes a second job.
        """
        unknown = sorted(set(params) - set(PROTOCOL_FIELDS))
        if unknown:
            raise TypeError(f"Unknown generation parameters: {', '.join(unknown)}.")
        body = {k: v for k, v in params.items() if v is not None}
        if prompt is not None:
            body["prompt"] = prompt
        headers = {"Prefer": f"wait={int(wait)}"} if wait else None
        response = self._http.request(
            "POST",
            "generations",
            json=body,
            headers=headers,
            idempotent=True,
            idempotency_key=idempotency_key,
        )
        return from_api(Generation, response.json())

    def get(self, job_id: str) -> Generation:
        return from_api(Generation, self._http.get_json(f"generations/{job_id}"))

    def list(
        self,
        *,
        status: str | list[str] | None = None,
        priority: str | None = None,
        category: str | None = None,
        template: str | None = None,
        created_after: str | None = None,
        created_before: str | None = None,
        page_size: int | None = None,
    ) -> Pages[Generation]:
        """Newest first; iterate to page through all of them."""
        params = {
            "status": status,
            "priority": priority,
            "category": category,
            "template": template,
            "created_after": created_after,
            "created_before": created_before,
            "page_size": page_size,
        }
        return self._http.paginate("generations", lambda d: from_api(Generation, d), params)

    def cancel(self, job_id: str) -> Generation:
        """Ask the job to stop; a finished job is a ``Conflict``."""
        return from_api(Generation, self._http.post_json(f"generations/{job_id}/cancel"))

    def wait(
        self,
        job_id: str,
        *,
        timeout: float | None = 600,
        on_progress: Callable[[Generation], None] | None = None,
        raise_on_failure: bool = False,
    ) -> Generation:
        """Poll until the job finishes; ``WaitTimeout`` after ``timeout`` seconds. With
        ``raise_on_failure`` a job that did not succeed raises ``JobFailed``."""
        return wait_for_job(
            lambda: self.get(job_id),
            timeout=timeout,
            sleep=self._http.sleep,
            on_progress=on_progress,
            raise_on_failure=raise_on_failure,
            what=f"Generation {job_id}",
        )

    def download(
        self, job: Generation | str, directory: str | os.PathLike[str], *, thumbnails: bool = False
    ) -> list[Path]:
        """Save the job's result images as ``<directory>/<job id>-<index>.png`` and return the
        paths. Each file's SHA-256 is checked against the API's before it is kept; an image the
        safety check withheld is skipped."""
        if isinstance(job, str):
            job = self.get(job)
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        saved = []
        for image in job.images:
            if image.url is None:
                continue
            suffix = "-thumb" if thumbnails else ""
            target = folder / f"{job.id}-{image.index}{suffix}.png"
            data = self.image_bytes(image, thumbnail=thumbnails)
            write_atomically(target, data)
            saved.append(target)
        return saved

    def image_bytes(self, image: Image, *, thumbnail: bool = False) -> bytes:
        """One image's PNG (through ``/images/<id>/download``, which redirects to a fresh
        short-lived URL: an expired ``url`` in an old job does not matter)."""
        params = {"thumbnail": "1"} if thumbnail else None
        response = self._http.request(
            "GET", f"images/{image.id}/download", params=params, follow_redirects=True
        )
        data = response.content
        if not thumbnail and hashlib.sha256(data).hexdigest() != image.sha256:
            raise EaselError(
                f"Image {image.id} arrived corrupted (SHA-256 mismatch); download it again."
            )
        return data
