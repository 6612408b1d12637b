"""Malformed JSON, unknown fields, oversize bodies: 400/413 in the error format, nothing written."""

from __future__ import annotations

import pytest
from django.test import override_settings

from tenants.models import ApiKey, AuditEvent
from tenants.roles import Role

pytestmark = pytest.mark.django_db


def _counts() -> tuple[int, int]:
    return ApiKey.objects.count(), AuditEvent.objects.count()


def test_malformed_json_is_a_400(persona, client_for):
    client = client_for(persona(Role.ADMIN), session=True)
    before = _counts()
    response = client.post("/api/v1/api-keys", data='{"name": ', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    assert "JSON" in response.json()["error"]["message"]
    assert _counts() == before


def test_unknown_fields_are_named(persona, client_for):
    client = client_for(persona(Role.ADMIN), session=True)
    before = _counts()
    response = client.post(
        "/api/v1/api-keys", {"name": "k", "organization": 7, "is_admin": True}, format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["fields"] == {"is_admin": "Unknown field.", "organization": "Unknown field."}
    assert _counts() == before


def test_invalid_values_name_the_field(persona, client_for):
    client = client_for(persona(Role.ADMIN), session=True)
    response = client.post("/api/v1/api-keys", {"name": "", "scopes": ["fly"]}, format="json")
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert set(fields) == {"name", "scopes"}


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1024)
def test_oversize_body_is_a_413(persona, client_for):
    client = client_for(persona(Role.ADMIN), session=True)
    before = _counts()
    response = client.post("/api/v1/api-keys", {"name": "x" * 5000}, format="json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert _counts() == before


def test_unknown_api_path_is_a_json_404(client):
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize(
    "path", ["/api/v1/nothing-here", "/api/v1/me/extra", "/api/v2/me", "/api/", "/api/nope"]
)
def test_every_unknown_api_path_is_a_json_404_in_every_configuration(path, debug, client, settings):
    settings.DEBUG = debug
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"


def test_unknown_api_path_is_a_404_for_every_method(persona, client_for):
    client = client_for(persona(Role.ADMIN))
    for method in ("post", "put", "patch", "delete"):
        response = getattr(client, method)("/api/v1/nothing-here")
        assert response.status_code == 404, method
        assert response.json()["error"]["code"] == "not_found"


def test_known_api_pages_missing_their_slash_still_redirect(client):
    response = client.get("/api/docs")
    assert response.status_code == 301 and response.url == "/api/docs/"


def test_an_unhandled_error_under_the_api_is_a_json_500(persona, client_for, settings):
    """A bug in a view (here: the database refusing a query) reaches API clients in the error
    format, not as Django's HTML page; the studio keeps Django's page."""
    from unittest import mock

    from django.db import DatabaseError

    settings.DEBUG = False
    client = client_for(persona(Role.ADMIN))
    client.raise_request_exception = False
    with mock.patch("tenants.api.views.MeView.get", side_effect=DatabaseError("relation gone")):
        response = client.get("/api/v1/me")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "server_error" and "relation gone" not in error["message"]
