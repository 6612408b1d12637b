"""Studio sign-in with lockout, sign-out, the organization switcher and role-based navigation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from studio.lockout import MAX_ADDRESS_FAILURES, MAX_FAILURES
from studio.models import LoginFailure
from tenants.context import SESSION_ORG_KEY
from tenants.models import Membership
from tenants.roles import Role
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests"


def _login(client: Client, username: str, password: str) -> object:
    return client.post("/studio/login/", {"username": username, "password": password})


def test_root_redirects_to_the_studio_and_the_studio_to_sign_in():
    client = Client()
    assert client.get("/").url == "/studio/"
    response = client.get("/studio/")
    assert response.status_code == 302
    assert response.url == "/studio/login/?next=/studio/"


def test_member_signs_in_and_sees_their_org_and_role(persona):
    editor = persona(Role.EDITOR)
    client = Client()
    response = _login(client, editor.user.username, PASSWORD)
    assert response.status_code == 302
    page = client.get(response.url)
    assert page.status_code == 200
    assert "Acme" in page.content.decode()
    assert "editor" in page.content.decode()


def test_sign_in_follows_a_local_next_but_not_an_external_one(persona):
    editor = persona(Role.EDITOR)
    client = Client()
    response = client.post(
        "/studio/login/",
        {"username": editor.user.username, "password": PASSWORD, "next": "https://evil.example/"},
    )
    assert response.url == "/studio/"


def test_wrong_password_shows_a_form_error_and_is_counted(persona):
    editor = persona(Role.EDITOR)
    response = _login(Client(), editor.user.username, "nope")
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert LoginFailure.objects.filter(username=editor.user.username).count() == 1


def test_five_failures_lock_the_account_even_with_the_right_password(persona):
    editor = persona(Role.EDITOR)
    client = Client()
    for _ in range(MAX_FAILURES):
        _login(client, editor.user.username, "wrong")
    response = _login(client, editor.user.username, PASSWORD)
    assert response.status_code == 429
    body = response.content.decode()
    assert "Too many failed sign-ins" in body
    assert "Try again in 15 minutes" in body
    assert "_auth_user_id" not in client.session


def test_lockout_message_is_the_same_for_a_username_that_does_not_exist(db):
    client = Client()
    for _ in range(MAX_FAILURES):
        _login(client, "nobody-here", "wrong")
    response = _login(client, "nobody-here", "wrong")
    assert response.status_code == 429
    assert "Too many failed sign-ins for this username" in response.content.decode()


def test_lockout_is_per_address_and_lifts_after_the_window(persona):
    editor = persona(Role.EDITOR)
    for _ in range(MAX_FAILURES):
        _login(Client(REMOTE_ADDR="10.0.0.1"), editor.user.username, "wrong")
    # Another address is not locked out.
    assert _login(Client(REMOTE_ADDR="10.0.0.2"), editor.user.username, PASSWORD).status_code == 302
    # Once the failures are older than the window, the first address may sign in again.
    LoginFailure.objects.update(at=timezone.now() - timedelta(minutes=16))
    assert _login(Client(REMOTE_ADDR="10.0.0.1"), editor.user.username, PASSWORD).status_code == 302


def test_one_address_spraying_many_usernames_is_locked_out(persona):
    editor = persona(Role.EDITOR)
    for n in range(MAX_ADDRESS_FAILURES):
        _login(Client(REMOTE_ADDR="10.0.0.7"), f"guess-{n}", "Spring2026!")
    response = _login(Client(REMOTE_ADDR="10.0.0.7"), editor.user.username, PASSWORD)
    assert response.status_code == 429
    assert "Too many failed sign-ins from your address" in response.content.decode()
    # Other addresses are not affected.
    assert _login(Client(REMOTE_ADDR="10.0.0.8"), editor.user.username, PASSWORD).status_code == 302


def test_a_successful_sign_in_does_not_lift_the_address_lockout(persona):
    editor = persona(Role.EDITOR)
    for n in range(MAX_ADDRESS_FAILURES - 1):
        _login(Client(REMOTE_ADDR="10.0.0.9"), f"guess-{n}", "wrong")
    assert _login(Client(REMOTE_ADDR="10.0.0.9"), editor.user.username, PASSWORD).status_code == 302
    _login(Client(REMOTE_ADDR="10.0.0.9"), "one-more", "wrong")
    assert _login(Client(REMOTE_ADDR="10.0.0.9"), editor.user.username, PASSWORD).status_code == 429


def _admin_login(client: Client, username: str, password: str) -> object:
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password, "next": "/admin/"},
    )


def test_admin_sign_in_is_behind_the_same_lockout(db):
    staff = get_user_model().objects.create_user("ops", password=PASSWORD, is_staff=True)
    client = Client(REMOTE_ADDR="10.0.1.1")
    for _ in range(MAX_FAILURES):
        assert _admin_login(client, staff.username, "wrong").status_code == 200
    response = _admin_login(client, staff.username, PASSWORD)
    assert "Too many failed sign-ins" in response.content.decode()
    assert "_auth_user_id" not in client.session
    # The studio counts the same failures: the pair is locked there too.
    assert _login(Client(REMOTE_ADDR="10.0.1.1"), staff.username, PASSWORD).status_code == 429


def test_admin_sign_in_works_and_clears_earlier_failures(db):
    staff = get_user_model().objects.create_user("ops", password=PASSWORD, is_staff=True)
    client = Client(REMOTE_ADDR="10.0.1.2")
    _admin_login(client, staff.username, "wrong")
    assert LoginFailure.objects.filter(username="ops").count() == 1
    response = _admin_login(client, staff.username, PASSWORD)
    assert response.status_code == 302 and response.url == "/admin/"
    assert not LoginFailure.objects.filter(username="ops").exists()


def test_admin_spraying_from_one_address_is_locked_out(db):
    staff = get_user_model().objects.create_user("ops", password=PASSWORD, is_staff=True)
    for n in range(MAX_ADDRESS_FAILURES):
        _admin_login(Client(REMOTE_ADDR="10.0.1.3"), f"guess-{n}", "wrong")
    client = Client(REMOTE_ADDR="10.0.1.3")
    assert (
        "Too many failed sign-ins from your address"
        in _admin_login(client, staff.username, PASSWORD).content.decode()
    )
    assert "_auth_user_id" not in client.session


def test_successful_sign_in_clears_earlier_failures(persona):
    editor = persona(Role.EDITOR)
    client = Client()
    for _ in range(MAX_FAILURES - 1):
        _login(client, editor.user.username, "wrong")
    assert _login(client, editor.user.username, PASSWORD).status_code == 302
    assert not LoginFailure.objects.filter(username=editor.user.username).exists()


def test_sign_out_needs_post_and_ends_the_session(persona, studio_client):
    client = studio_client(persona(Role.VIEWER))
    assert client.get("/studio/logout/").status_code == 405
    assert client.post("/studio/logout/").url == "/studio/login/"
    assert client.get("/studio/").status_code == 302


def test_login_form_is_csrf_protected(persona):
    client = Client(enforce_csrf_checks=True)
    editor = persona(Role.EDITOR)
    assert _login(client, editor.user.username, PASSWORD).status_code == 403
    page = client.get("/studio/login/")
    assert 'name="csrfmiddlewaretoken"' in page.content.decode()


def test_user_without_any_organization_gets_a_clear_403(db):
    client = Client()
    client.force_login(UserFactory(username="loner"))
    response = client.get("/studio/")
    assert response.status_code == 403
    assert "not a member of any organization" in response.content.decode()


def test_org_switcher_lists_both_orgs_and_switches(persona, outsider, studio_client):
    editor = persona(Role.EDITOR)
    Membership.objects.create(organization=outsider.org, user=editor.user, role=Role.VIEWER)
    client = studio_client(editor)
    page = client.get("/studio/").content.decode()
    assert 'name="organization"' in page
    assert "Globex (viewer)" in page
    response = client.post("/studio/organization/", {"organization": "globex"})
    assert response.url == "/studio/"
    assert client.session[SESSION_ORG_KEY] == outsider.org.pk
    assert "with the <strong>viewer</strong> role" in client.get("/studio/").content.decode()


def test_org_switcher_refuses_an_org_the_person_is_not_in(persona, outsider, studio_client):
    client = studio_client(persona(Role.EDITOR))
    assert client.post("/studio/organization/", {"organization": "globex"}).status_code == 404
    assert SESSION_ORG_KEY not in client.session


def test_single_org_member_sees_no_switcher(persona, studio_client):
    page = studio_client(persona(Role.EDITOR)).get("/studio/").content.decode()
    assert 'name="organization"' not in page


def test_pages_use_only_local_static_files(persona, studio_client):
    page = studio_client(persona(Role.EDITOR)).get("/studio/").content.decode()
    assert "/static/studio/vendor/htmx.min.js" in page
    assert "/static/studio/studio.css" in page
    assert "http://" not in page and "https://" not in page
