"""API-key authentication: valid, revoked, expired, malformed and missing keys."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from tenants import services
from tenants.models import ApiKey

pytestmark = pytest.mark.django_db


def _me(raw: str | None) -> object:
    client = APIClient()
    if raw is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client.get("/api/v1/me")


def test_valid_key_returns_its_team_and_records_last_use(owner):
    response = _me(owner.api_key)
    assert response.status_code == 200
    assert response.json()["team"]["slug"] == "team"
    assert response.json()["organization"]["slug"] == "acme"
    prefix = owner.api_key.split("_")[1]
    assert ApiKey.objects.get(prefix=prefix).last_used_at is not None


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda raw: None, "Authentication credentials were not provided."),
        (lambda raw: raw[:-1] + ("A" if raw[-1] != "A" else "B"), "Invalid API key."),
        (lambda raw: "esl_deadbeef_" + raw.split("_", 2)[2], "Invalid API key."),
        (lambda raw: "xyz_" + raw.split("_", 1)[1], "Malformed API key"),
        (lambda raw: "not-a-key", "Malformed API key"),
    ],
    ids=["missing", "wrong-secret", "wrong-prefix", "foreign-scheme", "garbage"],
)
def test_bad_keys_get_401_in_the_error_format(owner, mangle, message):
    response = _me(mangle(owner.api_key))
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    error = response.json()["error"]
    assert error["code"] in {"not_authenticated", "authentication_failed"}
    assert message in error["message"]
    assert error["fields"] == {}


def test_revoked_key_is_refused(owner):
    key = ApiKey.objects.get(prefix=owner.api_key.split("_")[1])
    services.api_key_revoke(actor=owner.principal, api_key=key)
    response = _me(owner.api_key)
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


def test_expired_key_is_refused(owner):
    key = ApiKey.objects.get(prefix=owner.api_key.split("_")[1])
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = _me(owner.api_key)
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


def test_secret_is_stored_only_as_a_hash(owner):
    key = ApiKey.objects.get(prefix=owner.api_key.split("_")[1])
    secret = owner.api_key.split("_", 2)[2]
    assert secret not in key.secret_hash
    assert len(key.secret_hash) == 64


def test_session_login_works_for_members(owner, client_for):
    response = client_for(owner, session=True).get("/api/v1/me")
    assert response.status_code == 200
    assert response.json()["role"] == "owner"
    assert response.json()["user"] == "acme-owner"
