"""``client.categories`` and ``client.model_versions``: the registry's aliases and versions."""

from __future__ import annotations

from typing import Any

from .._http import HTTPClient, Pages
from ..types import Category, ModelVersion, from_api


class Categories:
    def __init__(self, http: HTTPClient) -> None:
        self._http = http

    def list(self) -> list[Category]:
        return [from_api(Category, d) for d in self._http.get_json("categories")]

    def get(self, slug: str) -> Category:
        return from_api(Category, self._http.get_json(f"categories/{slug}"))

    def create(self, slug: str, name: str, **fields: Any) -> Category:
        """``fields``: ``base_model``, ``trigger_token``, ``default_template``,
        ``auto_promote``."""
        body = {"slug": slug, "name": name, **fields}
        return from_api(Category, self._http.post_json("categories", body))

    def promote(self, slug: str, version: int, *, alias: str = "production") -> Category:
        """Point ``alias`` at ``version`` (audited; kept in the alias history)."""
        body = {"version": version, "alias": alias}
        return from_api(Category, self._http.post_json(f"categories/{slug}/promote", body))

    def rollback(self, slug: str, *, alias: str = "production") -> Category:
        """Move ``alias`` back to the version it served before the last promotion."""
        body = {"alias": alias}
        return from_api(Category, self._http.post_json(f"categories/{slug}/rollback", body))

    def alias_history(self, slug: str, *, alias: str | None = None) -> Pages[dict[str, Any]]:
        return self._http.paginate(
            f"categories/{slug}/alias-history", lambda d: d, {"alias": alias}
        )


class ModelVersions:
    def __init__(self, http: HTTPClient) -> None:
        self._http = http

    def list(
        self,
        *,
        category: str | None = None,
        status: str | None = None,
        kind: str | None = None,
        page_size: int | None = None,
    ) -> Pages[ModelVersion]:
        params = {"category": category, "status": status, "kind": kind, "page_size": page_size}
        return self._http.paginate("model-versions", lambda d: from_api(ModelVersion, d), params)

    def get(self, version_id: int) -> ModelVersion:
        return from_api(ModelVersion, self._http.get_json(f"model-versions/{version_id}"))
