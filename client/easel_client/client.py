"""``Easel``: the client object, one per API key and server."""

from __future__ import annotations

import os
from types import TracebackType

import httpx

from ._http import HTTPClient
from .resources.catalogs import CatalogRuns, Catalogs
from .resources.generations import Generations
from .resources.models import Categories, ModelVersions
from .resources.templates import Templates
from .resources.trainings import Trainings
from .resources.uploads import Uploads
from .resources.usage import UsageResource
from .types import Usage


class Easel:
    """A client for one organization's API key.

    >>> easel = Easel(api_key="esl_...", base_url="https://easel.example.com")
    >>> job = easel.generations.create("a red apple on a white table", model="tiny", steps=2)
    >>> job = easel.generations.wait(job.id, timeout=120)
    >>> easel.generations.download(job, "out/")

    ``api_key`` and ``base_url`` default to ``EASEL_API_KEY`` and ``EASEL_URL``. Failed calls
    are retried ``max_retries`` times (see ``easel_client._http`` for which ones); errors are
    ``easel_client.errors.APIError`` subclasses. ``transport`` replaces httpx's network
    transport (e.g. ``httpx.MockTransport`` in tests).
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        max_retries: int = 3,
        max_retry_wait: float = 60.0,
        timeout: float | httpx.Timeout | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        api_key = api_key or os.environ.get("EASEL_API_KEY")
        base_url = base_url or os.environ.get("EASEL_URL")
        if not api_key:
            raise ValueError("No API key: pass api_key= or set EASEL_API_KEY.")
        if not base_url:
            raise ValueError("No server URL: pass base_url= or set EASEL_URL.")
        self.http = HTTPClient(
            api_key=api_key,
            base_url=base_url,
            max_retries=max_retries,
            max_retry_wait=max_retry_wait,
            timeout=timeout,
            transport=transport,
        )
        self.generations = Generations(self.http)
        self.templates = Templates(self.http)
        self.categories = Categories(self.http)
        self.model_versions = ModelVersions(self.http)
        self.trainings = Trainings(self.http)
        self.uploads = Uploads(self.http)
        self.catalogs = Catalogs(self.http)
        self.catalog_runs = CatalogRuns(self.http)
        self._usage = UsageResource(self.http)

    @property
    def base_url(self) -> str:
        return self.http.base_url

    def usage(self) -> Usage:
        """Images today and GPU-seconds this month for the organization and each team."""
        return self._usage.get()

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Easel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
