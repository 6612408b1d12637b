"""``client.usage``: images today and GPU-seconds this month, with limits and resets."""

from __future__ import annotations

from .._http import HTTPClient
from ..types import Usage, from_api


class UsageResource:
    def __init__(self, http: HTTPClient) -> None:
        self._http = http

    def get(self) -> Usage:
        return from_api(Usage, self._http.get_json("usage"))
