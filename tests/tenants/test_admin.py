"""Django admin for staff: quotas and memberships save through the audited services; keys never
show secrets."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from tenants.models import ApiKey, AuditEvent, Membership, Quota
from tenants.roles import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):  # type: ignore[no-untyped-def]
    user = get_user_model().objects.create_superuser("staff", "staff@example.com", "pw-staff-1")
    client.force_login(user)
    return client


def test_staff_sets_a_quota_through_the_audited_service(staff_client, owner):
    response = staff_client.post(
        "/admin/tenants/quota/add/",
        {
            "organization": owner.org.pk,
            "team": "",
            "images_per_day": 25,
            "gpu_seconds_per_month": "",
        },
    )
    assert response.status_code == 302, response.content[:500]
    quota = Quota.objects.get(organization=owner.org, team=None)
    assert quota.images_per_day == 25 and quota.gpu_seconds_per_month is None
    event = AuditEvent.objects.filter(organization=owner.org, object_type="tenants.quota").last()
    assert event is not None and event.actor_user.username == "staff"


def test_api_key_pages_never_show_the_secret_hash(staff_client, owner):
    key = ApiKey.objects.filter(organization=owner.org).first()
    page = staff_client.get(f"/admin/tenants/apikey/{key.pk}/change/")
    assert page.status_code == 200
    assert key.secret_hash not in page.content.decode()
    assert staff_client.get("/admin/tenants/organization/add/").status_code == 403


def _membership_events(org):  # type: ignore[no-untyped-def]
    return AuditEvent.objects.filter(
        organization=org, verb__in=["membership.set", "membership.removed"]
    ).order_by("at", "id")


def test_staff_adding_a_member_in_the_admin_is_audited(staff_client, owner):
    newcomer = get_user_model().objects.create_user("newcomer", password="pw-new-12345")
    before = _membership_events(owner.org).count()
    response = staff_client.post(
        "/admin/tenants/membership/add/",
        {
            "organization": owner.org.pk,
            "user": newcomer.pk,
            "role": Role.EDITOR,
            "teams": [owner.team.pk],
        },
    )
    assert response.status_code == 302, response.content[:2000]
    membership = Membership.objects.get(organization=owner.org, user=newcomer)
    assert membership.role == Role.EDITOR
    assert list(membership.teams.values_list("slug", flat=True)) == [owner.team.slug]
    event = _membership_events(owner.org).last()
    assert _membership_events(owner.org).count() == before + 1
    assert event.verb == "membership.set" and event.actor_user.username == "staff"
    assert event.before is None
    assert event.after == {"user": "newcomer", "role": "editor", "teams": [owner.team.slug]}


def test_staff_changing_a_role_in_the_admin_is_audited(staff_client, persona):
    editor = persona(Role.EDITOR)
    membership = Membership.objects.get(organization=editor.org, user=editor.user)
    response = staff_client.post(
        f"/admin/tenants/membership/{membership.pk}/change/",
        {"role": Role.ADMIN, "teams": [editor.team.pk]},
    )
    assert response.status_code == 302, response.content[:2000]
    membership.refresh_from_db()
    assert membership.role == Role.ADMIN
    event = _membership_events(editor.org).last()
    assert event.verb == "membership.set" and event.actor_user.username == "staff"
    assert event.before["role"] == "editor" and event.after["role"] == "admin"


def test_staff_removing_a_member_in_the_admin_is_audited(staff_client, persona):
    editor = persona(Role.EDITOR)
    membership = Membership.objects.get(organization=editor.org, user=editor.user)
    response = staff_client.post(
        f"/admin/tenants/membership/{membership.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()
    event = _membership_events(editor.org).last()
    assert event.verb == "membership.removed" and event.actor_user.username == "staff"
    assert event.object_id == str(membership.pk) and event.before["role"] == "editor"


def test_staff_bulk_removing_members_in_the_admin_is_audited(staff_client, persona):
    members = [persona(Role.EDITOR), persona(Role.REVIEWER)]
    ids = [Membership.objects.get(organization=p.org, user=p.user).pk for p in members]
    response = staff_client.post(
        "/admin/tenants/membership/",
        {"action": "delete_selected", "_selected_action": ids, "post": "yes"},
    )
    assert response.status_code == 302
    assert not Membership.objects.filter(pk__in=ids).exists()
    removed = AuditEvent.objects.filter(verb="membership.removed")
    assert sorted(int(e.object_id) for e in removed) == sorted(ids)


def test_admin_refuses_teams_of_another_organization(staff_client, owner, outsider):
    newcomer = get_user_model().objects.create_user("newcomer", password="pw-new-12345")
    response = staff_client.post(
        "/admin/tenants/membership/add/",
        {
            "organization": owner.org.pk,
            "user": newcomer.pk,
            "role": Role.VIEWER,
            "teams": [outsider.team.pk],
        },
    )
    assert response.status_code == 200
    assert "Choose only teams of" in response.content.decode()
    assert not Membership.objects.filter(user=newcomer).exists()
