"""``client.templates``: versioned prompt templates per application."""

from __future__ import annotations

from typing import Any

from .._http import HTTPClient, Pages
from ..types import Template, from_api


class Templates:
    def __init__(self, http: HTTPClient) -> None:
        self._http = http

    def list(self, *, page_size: int | None = None) -> Pages[Template]:
        """The latest version of each application's template."""
        return self._http.paginate(
            "templates", lambda d: from_api(Template, d), {"page_size": page_size}
        )

    def get(self, application: str, *, version: int | None = None) -> Template:
        body = self._http.get_json(f"templates/{application}", params={"version": version})
        return from_api(Template, body)

    def create(self, application: str, text: str, **fields: Any) -> Template:
        """``fields``: ``few_shot_examples``, ``style``, ``negative_prompt``,
        ``default_params``, ``rubric``, ``pass_threshold``, ``max_attempts``."""
        body = {"application": application, "text": text, **fields}
        return from_api(Template, self._http.post_json("templates", body))

    def update(self, application: str, **changes: Any) -> Template:
        """Write a new version with these changes (``PATCH``); pass ``base_version`` to refuse
        an edit made from an out-of-date version."""
        response = self._http.request("PATCH", f"templates/{application}", json=changes)
        return from_api(Template, response.json())

    def versions(self, application: str) -> Pages[Template]:
        """Every version, newest first."""
        return self._http.paginate(
            f"templates/{application}/versions", lambda d: from_api(Template, d), {}
        )

    def render(self, application: str, variables: dict[str, str], **options: Any) -> str:
        """The prompt the template makes from ``variables`` (a preview; nothing is queued)."""
        body = {"variables": variables, **options}
        return self._http.post_json(f"templates/{application}/render", body)["prompt"]
