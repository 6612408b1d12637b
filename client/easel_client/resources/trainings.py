"""``client.trainings``: upload a folder of photos as a fine-tuning job and follow it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._files import ProgressReader, content_type, photos_in
from .._http import HTTPClient, Pages
from .._waiting import wait_for_job
from ..types import Training, from_api

Photo = str | os.PathLike[str] | tuple[str, bytes]


class Trainings:
    def __init__(self, http: HTTPClient) -> None:
        self._http = http

    def create(
        self,
        *,
        category: str,
        rare_token: str,
        class_prompt: str,
        photos: str | os.PathLike[str] | Sequence[Photo],
        instance_prompt: str | None = None,
        mode: str | None = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        on_upload: Callable[[int, int], None] | None = None,
    ) -> Training:
        """Start a DreamBooth job for ``category`` from 3–30 photos: a folder (its PNG, JPEG
        and WebP files), or a list of paths or ``(name, bytes)`` pairs.

        ``on_upload(sent, total)`` reports the upload in bytes. Every photo is checked by the
        server before anything is queued; the bad ones come back in one ``ValidationError``
        whose ``fields["images"]`` names each with its reason.
        """
        files = _load(photos)
        total = sum(len(data) for _, data in files)
        sent = 0

        def advance(n: int) -> None:
            nonlocal sent
            sent += n
            if on_upload is not None:
                on_upload(sent, total)

        parts = [
            ("images", (name, ProgressReader(data, advance), content_type(name)))
            for name, data in files
        ]
        form: dict[str, Any] = {
            "category": category,
            "rare_token": rare_token,
            "class_prompt": class_prompt,
        }
        if instance_prompt:
            form["instance_prompt"] = instance_prompt
        if mode:
            form["mode"] = mode
        if params:
            form["params"] = json.dumps(params)
        response = self._http.request(
            "POST",
            "trainings",
            data=form,
            files=parts,
            idempotent=True,
            idempotency_key=idempotency_key,
        )
        return from_api(Training, response.json())

    def get(self, job_id: str) -> Training:
        return from_api(Training, self._http.get_json(f"trainings/{job_id}"))

    def list(
        self,
        *,
        status: str | list[str] | None = None,
        category: str | None = None,
        page_size: int | None = None,
    ) -> Pages[Training]:
        params = {"status": status, "category": category, "page_size": page_size}
        return self._http.paginate("trainings", lambda d: from_api(Training, d), params)

    def cancel(self, job_id: str) -> Training:
        return from_api(Training, self._http.post_json(f"trainings/{job_id}/cancel"))

    def wait(
        self,
        job_id: str,
        *,
        timeout: float | None = 3600,
        on_progress: Callable[[Training], None] | None = None,
        raise_on_failure: bool = False,
    ) -> Training:
        """Poll until the job finishes; ``on_progress`` sees each state (``step`` of
        ``total_steps``)."""
        return wait_for_job(
            lambda: self.get(job_id),
            timeout=timeout,
            sleep=self._http.sleep,
            on_progress=on_progress,
            raise_on_failure=raise_on_failure,
            what=f"Training {job_id}",
        )


def _load(photos: str | os.PathLike[str] | Sequence[Photo]) -> list[tuple[str, bytes]]:
    if isinstance(photos, str | os.PathLike):
        photos = list(photos_in(photos))
    loaded = []
    for photo in photos:
        if isinstance(photo, tuple):
            loaded.append(photo)
        else:
            path = Path(photo)
            loaded.append((path.name, path.read_bytes()))
    return loaded
