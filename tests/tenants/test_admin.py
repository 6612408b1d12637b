"""Django admin for staff: quotas save through the audited service; keys never show secrets."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from tenants.models import ApiKey, AuditEvent, Quota

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
