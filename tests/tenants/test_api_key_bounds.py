"""An API key never does more than the person behind it may do now, and never outlives the key
that minted it; owners can cap how long keys live."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from tenants import services
from tenants.models import ApiKey, AuditEvent, Membership
from tenants.roles import Action, Role

pytestmark = pytest.mark.django_db

ADMIN_SCOPES = [Action.VIEW, Action.GENERATE, Action.MANAGE_MODELS, Action.MANAGE_KEYS]


def _bearer(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def _key_by(client: APIClient, **body: object) -> dict:
    response = client.post("/api/v1/api-keys", {"name": "k", **body}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def _in(**delta: float) -> str:
    return (timezone.now() + timedelta(**delta)).isoformat()


@pytest.fixture
def admin_key(persona, client_for):  # type: ignore[no-untyped-def]
    """A key the admin created for themselves (manage_keys among its scopes)."""
    admin = persona(Role.ADMIN)
    return admin, _key_by(client_for(admin, session=True), scopes=ADMIN_SCOPES)


# --- the creator's current role bounds the key -----------------------------------------------


def test_key_stops_authenticating_when_its_creator_leaves_the_org(admin_key):
    admin, key = admin_key
    client = _bearer(key["secret"])
    assert client.get("/api/v1/me").status_code == 200
    Membership.objects.filter(organization=admin.org, user=admin.user).delete()
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert "no longer a member" in response.json()["error"]["message"]


def test_key_stops_authenticating_when_its_creator_is_deleted(admin_key):
    admin, key = admin_key
    get_user_model().objects.filter(pk=admin.user.pk).delete()
    response = _bearer(key["secret"]).get("/api/v1/me")
    assert response.status_code == 401
    assert "no longer a member" in response.json()["error"]["message"]


def test_key_of_a_demoted_creator_loses_what_the_new_role_lacks(admin_key, owner):
    admin, key = admin_key
    client = _bearer(key["secret"])
    assert client.get("/api/v1/me").json()["actions"] == sorted(ADMIN_SCOPES)
    services.membership_set(actor=owner.principal, user=admin.user, role=Role.EDITOR)
    assert client.get("/api/v1/me").json()["actions"] == ["generate", "view"]
    denied = client.post("/api/v1/api-keys", {"name": "more"}, format="json")
    assert denied.status_code == 403
    assert client.post(
        "/api/v1/categories", {"slug": "x", "name": "X"}, format="json"
    ).status_code == (403)
    # Promoted back, the key's own scopes apply again (the key itself was never changed).
    services.membership_set(actor=owner.principal, user=admin.user, role=Role.ADMIN)
    assert client.get("/api/v1/me").json()["actions"] == sorted(ADMIN_SCOPES)


def test_key_created_by_a_key_cannot_grant_what_the_creating_key_lacks(admin_key):
    _admin, key = admin_key
    response = _bearer(key["secret"]).post(
        "/api/v1/api-keys",
        {"name": "child", "scopes": ["view", "review"], "expires_at": _in(hours=1)},
        format="json",
    )
    assert response.status_code == 400
    assert "review" in response.json()["error"]["fields"]["scopes"]


def test_key_created_by_a_key_answers_to_the_person_behind_the_creating_key(admin_key):
    admin, key = admin_key
    child = _key_by(_bearer(key["secret"]), scopes=["view"], expires_at=_in(hours=1))
    row = ApiKey.objects.get(pk=child["id"])
    assert row.created_by == admin.user and row.created_by_api_key_id == key["id"]
    assert _bearer(child["secret"]).get("/api/v1/me").status_code == 200
    Membership.objects.filter(organization=admin.org, user=admin.user).delete()
    assert _bearer(child["secret"]).get("/api/v1/me").status_code == 401


# --- a key minted by a key never outlives it --------------------------------------------------


def test_key_created_by_a_key_must_expire(admin_key):
    _admin, key = admin_key
    response = _bearer(key["secret"]).post(
        "/api/v1/api-keys", {"name": "forever", "scopes": ["view"]}, format="json"
    )
    assert response.status_code == 400
    assert "expires_at" in response.json()["error"]["fields"]
    assert not ApiKey.objects.filter(name="forever").exists()


def test_key_created_by_a_key_cannot_expire_after_it(persona, client_for):
    admin = persona(Role.ADMIN)
    parent = _key_by(client_for(admin, session=True), scopes=ADMIN_SCOPES, expires_at=_in(days=1))
    client = _bearer(parent["secret"])
    late = client.post(
        "/api/v1/api-keys",
        {"name": "late", "scopes": ["view"], "expires_at": _in(days=2)},
        format="json",
    )
    assert late.status_code == 400
    assert "expires_at" in late.json()["error"]["fields"]
    ok = client.post(
        "/api/v1/api-keys",
        {"name": "ok", "scopes": ["view"], "expires_at": _in(hours=12)},
        format="json",
    )
    assert ok.status_code == 201, ok.json()


def test_revoking_a_key_revokes_the_keys_it_created(admin_key, client_for):
    admin, key = admin_key
    child = _key_by(_bearer(key["secret"]), scopes=["view", "manage_keys"], expires_at=_in(hours=2))
    grandchild = _key_by(_bearer(child["secret"]), scopes=["view"], expires_at=_in(hours=1))
    revoked = client_for(admin, session=True).post(f"/api/v1/api-keys/{key['id']}/revoke")
    assert revoked.status_code == 200
    for raw in (key["secret"], child["secret"], grandchild["secret"]):
        assert _bearer(raw).get("/api/v1/me").status_code == 401
    verbs = AuditEvent.objects.filter(verb="api_key.revoked").values_list("object_id", flat=True)
    assert set(verbs) == {str(key["id"]), str(child["id"]), str(grandchild["id"])}


# --- the organization's maximum key lifetime -------------------------------------------------


def test_owner_sets_a_maximum_key_lifetime_and_it_is_audited(owner, client_for):
    client = client_for(owner, session=True)
    assert client.get("/api/v1/organization").json()["api_key_max_lifetime_days"] is None
    response = client.patch(
        "/api/v1/organization", {"api_key_max_lifetime_days": 30}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["api_key_max_lifetime_days"] == 30
    event = AuditEvent.objects.get(verb="organization.api_key_max_lifetime_changed")
    assert event.before == {"api_key_max_lifetime_days": None}
    assert event.after == {"api_key_max_lifetime_days": 30}
    assert event.actor_user == owner.user


@pytest.mark.parametrize("bad", [0, -1, 100000, "soon", 1.5])
def test_maximum_key_lifetime_must_be_a_sensible_number_of_days(bad, owner, client_for):
    response = client_for(owner, session=True).patch(
        "/api/v1/organization", {"api_key_max_lifetime_days": bad}, format="json"
    )
    assert response.status_code == 400
    assert "api_key_max_lifetime_days" in response.json()["error"]["fields"]
    assert not AuditEvent.objects.filter(verb="organization.api_key_max_lifetime_changed").exists()


def test_only_owners_set_the_maximum_key_lifetime(persona, client_for):
    response = client_for(persona(Role.ADMIN), session=True).patch(
        "/api/v1/organization", {"api_key_max_lifetime_days": 30}, format="json"
    )
    assert response.status_code == 403


def test_keys_beyond_the_maximum_lifetime_or_without_expiry_are_refused(owner, persona, client_for):
    client = client_for(persona(Role.ADMIN), session=True)
    services.organization_api_key_max_lifetime_set(
        actor=owner.principal, api_key_max_lifetime_days=30
    )
    for body in ({}, {"expires_at": None}, {"expires_at": _in(days=31)}):
        response = client.post("/api/v1/api-keys", {"name": "k", **body}, format="json")
        assert response.status_code == 400, body
        assert "30 days" in response.json()["error"]["fields"]["expires_at"]
    assert _key_by(client, expires_at=_in(days=29))["expires_at"] is not None


def test_staff_set_the_maximum_key_lifetime_in_the_admin_through_the_audited_service(client, owner):
    staff = get_user_model().objects.create_superuser("staff", "staff@example.com", "pw-staff-1")
    client.force_login(staff)
    org = owner.org
    page = client.get(f"/admin/tenants/organization/{org.pk}/change/")
    assert page.status_code == 200 and "api_key_max_lifetime_days" in page.content.decode()
    form = {
        "name": org.name,
        "slug": org.slug,
        "default_model": org.default_model,
        "api_key_max_lifetime_days": 7,
        "teams-TOTAL_FORMS": 0,
        "teams-INITIAL_FORMS": 0,
    }
    response = client.post(f"/admin/tenants/organization/{org.pk}/change/", form)
    assert response.status_code == 302, response.content[:2000]
    org.refresh_from_db()
    assert org.api_key_max_lifetime_days == 7
    event = AuditEvent.objects.get(verb="organization.api_key_max_lifetime_changed")
    assert event.actor_user == staff and event.after == {"api_key_max_lifetime_days": 7}
