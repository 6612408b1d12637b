"""``client.catalogs`` and ``client.catalog_runs``: upload product rows, run them, export."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .._files import write_atomically
from .._http import HTTPClient, Pages
from .._waiting import poll
from ..errors import Conflict, EaselError
from ..types import Catalog, CatalogImport, CatalogRun, Export, Product, RunItem, from_api


class Catalogs:
    def __init__(self, http: HTTPClient) -> None:
        self._http = http

    def create(
        self, slug: str, *, name: str | None = None, default_template: str | None = None
    ) -> Catalog:
        body = {"slug": slug, "name": name, "default_template": default_template}
        body = {k: v for k, v in body.items() if v is not None}
        return from_api(Catalog, self._http.post_json("catalogs", body))

    def get(self, slug: str) -> Catalog:
        return from_api(Catalog, self._http.get_json(f"catalogs/{slug}"))

    def list(self, *, page_size: int | None = None) -> Pages[Catalog]:
        return self._http.paginate(
            "catalogs", lambda d: from_api(Catalog, d), {"page_size": page_size}
        )

    def upload(
        self,
        slug: str,
        file: str | os.PathLike[str] | IO[bytes],
        *,
        format: str | None = None,  # noqa: A002 - the API's field name
        file_name: str | None = None,
    ) -> CatalogImport:
        """Upsert a CSV (header row) or JSONL file's rows by SKU; the result counts them and
        lists the rejected rows with their line and reason."""
        if isinstance(file, str | os.PathLike):
            path = Path(file)
            name, data = file_name or path.name, path.read_bytes()
        else:
            name, data = file_name or Path(getattr(file, "name", "upload.csv")).name, file.read()
        form = {"format": format} if format else None
        parts = [("file", (name, io.BytesIO(data), "text/csv"))]
        response = self._http.request("POST", f"catalogs/{slug}/import", data=form, files=parts)
        return from_api(CatalogImport, response.json())

    def products(self, slug: str, **filters: Any) -> Pages[Product]:
        """``filters``: ``sku``, ``category``, ``template``, ``q``, ``published``
        ("true"/"false"), ``changed``, ``page_size``."""
        return self._http.paginate(
            f"catalogs/{slug}/products", lambda d: from_api(Product, d), filters
        )


class CatalogRuns:
    def __init__(self, http: HTTPClient) -> None:
        self._http = http

    def create(
        self, catalog: str, mode: str = "missing", *, idempotency_key: str | None = None
    ) -> CatalogRun:
        """Start a run: ``all``, ``missing`` (no approved image) or ``changed``."""
        response = self._http.request(
            "POST",
            "catalog-runs",
            json={"catalog": catalog, "mode": mode},
            idempotent=True,
            idempotency_key=idempotency_key,
        )
        return from_api(CatalogRun, response.json())

    def get(self, run_id: str) -> CatalogRun:
        return from_api(CatalogRun, self._http.get_json(f"catalog-runs/{run_id}"))

    def list(self, *, catalog: str | None = None, status: str | None = None) -> Pages[CatalogRun]:
        params = {"catalog": catalog, "status": status}
        return self._http.paginate("catalog-runs", lambda d: from_api(CatalogRun, d), params)

    def items(self, run_id: str, *, status: str | list[str] | None = None) -> Pages[RunItem]:
        return self._http.paginate(
            f"catalog-runs/{run_id}/items", lambda d: from_api(RunItem, d), {"status": status}
        )

    def pause(self, run_id: str) -> CatalogRun:
        return from_api(CatalogRun, self._http.post_json(f"catalog-runs/{run_id}/pause"))

    def resume(self, run_id: str) -> CatalogRun:
        return from_api(CatalogRun, self._http.post_json(f"catalog-runs/{run_id}/resume"))

    def cancel(self, run_id: str) -> CatalogRun:
        return from_api(CatalogRun, self._http.post_json(f"catalog-runs/{run_id}/cancel"))

    def wait(
        self,
        run_id: str,
        *,
        timeout: float | None = 3600,
        on_progress: Callable[[CatalogRun], None] | None = None,
    ) -> CatalogRun:
        """Poll until the run is completed or canceled; ``on_progress`` sees each state
        (``progress.finished`` of ``progress.total``, ``progress.counts`` by item status)."""
        return poll(
            lambda: self.get(run_id),
            done=lambda r: r.finished,
            timeout=timeout,
            sleep=self._http.sleep,
            on_progress=on_progress,
            what=f"Catalog run {run_id}",
        )

    def export(self, run_id: str) -> Export:
        """Expiring links to the run's manifest CSV and ZIP; ``Conflict`` until it is built."""
        return from_api(Export, self._http.get_json(f"catalog-runs/{run_id}/export"))

    def rebuild_export(self, run_id: str) -> CatalogRun:
        """Build the export again (after more reviews), in the background."""
        return from_api(CatalogRun, self._http.post_json(f"catalog-runs/{run_id}/export"))

    def wait_for_export(self, run_id: str, *, timeout: float | None = 600) -> Export:
        """Poll the run until its export is ready and return its links; an export that failed
        raises ``EaselError`` with the server's reason."""
        run = poll(
            lambda: self.get(run_id),
            done=lambda r: r.export_status in ("ready", "failed"),
            timeout=timeout,
            sleep=self._http.sleep,
            what=f"The export of catalog run {run_id}",
        )
        if run.export_status == "failed":
            raise EaselError(f"The export of run {run_id} failed: {run.export_error}")
        try:
            return self.export(run_id)
        except Conflict:  # rebuilt by someone else between the two requests
            return self.wait_for_export(run_id, timeout=timeout)

    def download_export(
        self, run_id: str, directory: str | os.PathLike[str], *, timeout: float | None = 600
    ) -> tuple[Path, Path]:
        """Wait for the export and save ``<run id>-manifest.csv`` and ``<run id>-images.zip``
        in ``directory``; returns both paths."""
        links = self.wait_for_export(run_id, timeout=timeout)
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        manifest = folder / f"{run_id}-manifest.csv"
        archive = folder / f"{run_id}-images.zip"
        write_atomically(manifest, self._http.download(links.manifest_url))
        write_atomically(archive, self._http.download(links.zip_url))
        return manifest, archive
