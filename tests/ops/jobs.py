"""Submitting jobs the way a client does, for the worker-process tests."""

from __future__ import annotations

from typing import Any


def submit(client: Any, body: dict[str, Any], n: int) -> list[str]:
    """``n`` jobs of ``body`` through ``POST /api/v1/generations`` (seeds 0…n-1); their ids."""
    ids = []
    for seed in range(n):
        response = client.post("/api/v1/generations", body | {"seed": seed}, format="json")
        assert response.status_code == 202, response.content
        ids.append(response.json()["id"])
    return ids
