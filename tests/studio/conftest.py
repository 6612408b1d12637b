"""Studio fixtures: a browser-like Django test client signed in as a persona."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import Persona


@pytest.fixture
def studio_client():  # type: ignore[no-untyped-def]
    """``studio_client(persona)``: a test client with that persona's session (CSRF enforced)."""

    def build(p: Persona | None) -> Client:
        client = Client(enforce_csrf_checks=False)
        if p is not None:
            client.force_login(p.user)
        return client

    return build
