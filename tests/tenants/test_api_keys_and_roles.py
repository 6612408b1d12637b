"""API keys: create (secret once), list, revoke; roles; audit events; tenant isolation."""

from __future__ import annotations

import pytest

from tenants.models import ApiKey, AuditEvent
from tenants.roles import ROLE_ACTIONS, Action, Role

pytestmark = pytest.mark.django_db


def test_admin_creates_a_key_whose_secret_is_shown_once(persona, client_for):
    admin = persona(Role.ADMIN)
    client = client_for(admin, session=True)
    created = client.post(
        "/api/v1/api-keys", {"name": "ci", "scopes": ["view", "generate"]}, format="json"
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["secret"].startswith(f"esl_{body['prefix']}_")
    listed = client.get("/api/v1/api-keys").json()["results"]
    assert {k["prefix"] for k in listed} >= {body["prefix"]}
    assert all("secret" not in k for k in listed)
    assert client.get(f"/api/v1/api-keys/{body['id']}").json().get("secret") is None
    # The new key works at once with the scopes it was given.
    from rest_framework.test import APIClient

    new_client = APIClient()
    new_client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['secret']}")
    assert new_client.get("/api/v1/me").json()["actions"] == ["generate", "view"]


def test_key_creation_and_revocation_are_audited(persona, client_for):
    admin = persona(Role.ADMIN)
    client = client_for(admin, session=True)
    key_id = client.post("/api/v1/api-keys", {"name": "ci"}, format="json").json()["id"]
    revoked = client.post(f"/api/v1/api-keys/{key_id}/revoke")
    assert revoked.status_code == 200
    assert revoked.json()["active"] is False
    events = AuditEvent.objects.filter(object_type="tenants.apikey", object_id=str(key_id))
    assert [e.verb for e in events.order_by("at", "id")] == ["api_key.created", "api_key.revoked"]
    assert all(e.actor_user == admin.user for e in events)
    api = client.get("/api/v1/audit-events", {"object_id": key_id, "object_type": "tenants.apikey"})
    assert [e["verb"] for e in api.json()["results"]] == ["api_key.revoked", "api_key.created"]
    assert api.json()["results"][0]["actor"] == {"type": "user", "username": "acme-admin"}


def test_nobody_grants_scopes_they_do_not_hold(persona, client_for):
    admin = persona(Role.ADMIN)
    response = client_for(admin, session=True).post(
        "/api/v1/api-keys", {"name": "x", "scopes": ["manage_org"]}, format="json"
    )
    assert response.status_code == 400
    assert "manage_org" in response.json()["error"]["fields"]["scopes"]


@pytest.mark.parametrize("role", Role.values)
def test_each_role_can_do_exactly_what_the_table_says(role, persona, client_for):
    member = persona(role)
    client = client_for(member, session=True)
    may_manage_keys = Action.MANAGE_KEYS in ROLE_ACTIONS[role]
    may_manage_org = Action.MANAGE_ORG in ROLE_ACTIONS[role]
    assert client.get("/api/v1/me").json()["actions"] == sorted(ROLE_ACTIONS[role])
    assert client.get("/api/v1/teams").status_code == 200
    assert client.get("/api/v1/audit-events").status_code == 200
    key = client.post("/api/v1/api-keys", {"name": "k", "scopes": ["view"]}, format="json")
    assert key.status_code == (201 if may_manage_keys else 403)
    team = client.post("/api/v1/teams", {"name": "New", "slug": f"new-{role}"}, format="json")
    assert team.status_code == (201 if may_manage_org else 403)
    if team.status_code == 403:
        assert team.json()["error"]["code"] == "permission_denied"
        assert role in team.json()["error"]["message"]


def test_api_key_scopes_limit_what_it_can_do(persona, client_for):
    viewer = persona(Role.VIEWER)  # key carries only "view"
    client = client_for(viewer)
    assert client.get("/api/v1/teams").status_code == 200
    response = client.post("/api/v1/api-keys", {"name": "k"}, format="json")
    assert response.status_code == 403
    assert "API key" in response.json()["error"]["message"]


def test_outsider_gets_404_on_every_object_endpoint(owner, outsider, client_for):
    ours_key = ApiKey.objects.filter(organization=owner.org).first()
    ours_team = owner.team
    ours_event = AuditEvent.objects.filter(organization=owner.org).first()
    for client in (client_for(outsider), client_for(outsider, session=True)):
        for url, method in [
            (f"/api/v1/api-keys/{ours_key.pk}", "get"),
            (f"/api/v1/api-keys/{ours_key.pk}/revoke", "post"),
            (f"/api/v1/teams/{ours_team.pk}", "get"),
            (f"/api/v1/audit-events/{ours_event.pk}", "get"),
        ]:
            response = getattr(client, method)(url)
            missing = getattr(client, method)(url.replace(str(ours_key.pk), "999999", 1))
            assert response.status_code == 404, url
            assert response.json() == missing.json() or "999999" not in url
            assert response.json()["error"]["code"] == "not_found"
        listed = client.get("/api/v1/api-keys").json()["results"]
        assert ours_key.prefix not in {k["prefix"] for k in listed}
        events = client.get("/api/v1/audit-events").json()["results"]
        assert str(ours_key.pk) not in {
            e["object_id"] for e in events if "apikey" in e["object_type"]
        }
    ours_key.refresh_from_db()
    assert ours_key.revoked_at is None


def test_member_of_two_orgs_picks_one_with_a_header(owner, outsider, client_for):
    from tenants import services

    services.membership_set(actor=outsider.principal, user=owner.user, role=Role.VIEWER)
    client = client_for(owner, session=True)
    assert client.get("/api/v1/me", HTTP_X_EASEL_ORGANIZATION="globex").json()["role"] == "viewer"
    assert client.get("/api/v1/me", HTTP_X_EASEL_ORGANIZATION="acme").json()["role"] == "owner"
    denied = client.get("/api/v1/me", HTTP_X_EASEL_ORGANIZATION="nope")
    assert denied.status_code == 403
