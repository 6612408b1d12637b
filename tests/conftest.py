"""Shared fixtures: personas (owner, teammates by role, an outsider from another organization),
API clients, the rule that CI runs against the real services, and an offline hub for torch."""

from __future__ import annotations

import os

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from tenants.roles import Role

from .factories import Persona, make_org, make_persona

pytest_plugins = ["tests.registry_fixtures"]

# Read when huggingface_hub and torch are imported, so set here, before any test module is
# collected (none of the imports above load them). Nothing in the tests may reach the network.
os.environ["HF_HUB_OFFLINE"] = "1"
# OpenMP threads that sleep instead of spinning while idle: on a shared two-core machine spinning
# threads slow training 2-3x under contention; results are unchanged.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("EASEL_REQUIRE_SERVICES") == "1":
        engine = settings.DATABASES["default"]["ENGINE"]
        if "postgresql" not in engine:
            raise pytest.UsageError(
                "EASEL_REQUIRE_SERVICES=1 but DATABASE_URL is not PostgreSQL "
                '(run: eval "$(scripts/services.sh env)").'
            )


def require_service(name: str, reason: str) -> None:
    """Skip a test whose service is absent, or fail it when CI requires the services."""
    if os.environ.get("EASEL_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{name} is required (EASEL_REQUIRE_SERVICES=1) but {reason}")
    pytest.skip(f"{name} not configured: {reason}")


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Each test starts with no rate-limit history (ids repeat after a rolled-back test)."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def org_a(db):  # type: ignore[no-untyped-def]
    return make_org("acme")


@pytest.fixture
def org_b(db):  # type: ignore[no-untyped-def]
    return make_org("globex")


@pytest.fixture
def owner(org_a) -> Persona:  # type: ignore[no-untyped-def]
    return make_persona(*org_a, Role.OWNER)


@pytest.fixture
def persona(org_a):  # type: ignore[no-untyped-def]
    """Build a persona of any role in organization A: ``persona("reviewer")``."""
    made: dict[str, Persona] = {}

    def build(role: str) -> Persona:
        if role not in made:
            made[role] = make_persona(*org_a, role)
        return made[role]

    return build


@pytest.fixture
def outsider(org_b) -> Persona:  # type: ignore[no-untyped-def]
    """The owner of another organization: sees everything of theirs and nothing of ours."""
    return make_persona(*org_b, Role.OWNER)


@pytest.fixture
def client_for():  # type: ignore[no-untyped-def]
    """An API client authenticated with a persona's API key (or its session with session=True)."""

    def build(p: Persona, *, session: bool = False) -> APIClient:
        client = APIClient()
        if session:
            client.force_login(p.user)
        else:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {p.api_key}")
        return client

    return build
