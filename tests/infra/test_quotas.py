"""Quotas and the usage ledger: limits per organization and team, reservations that settle or
release, the 429 a client sees, the usage and quota endpoints, and races at the limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import include, path
from django.utils import timezone
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants.models import AuditEvent, Quota, UsageRecord
from tenants.quotas import (
    QuotaExceeded,
    quota_release,
    quota_reserve,
    quota_set,
    quota_settle,
)
from tenants.roles import Action, Role

from .conftest import require_postgres, run_concurrently


def _limits(org, owner_principal, team=None, images=None, gpu=None):  # type: ignore[no-untyped-def]
    return quota_set(
        actor=owner_principal,
        org=org,
        team=team,
        images_per_day=images,
        gpu_seconds_per_month=gpu,
    )


def _reserve(p, ref, images=1, gpu=0.0):  # type: ignore[no-untyped-def]
    return quota_reserve(org=p.org, team=p.team, images=images, gpu_seconds=gpu, reference=ref)


def _used(org, kind):  # type: ignore[no-untyped-def]
    rows = UsageRecord.objects.filter(
        organization=org, kind=kind, state__in=["reserved", "settled"]
    )
    return sum(r.amount for r in rows)


@pytest.mark.django_db
class TestLedger:
    def test_the_daily_image_limit_refuses_with_the_numbers_and_the_reset_time(self, owner):
        _limits(owner.org, owner.principal, images=10)
        _reserve(owner, "job:1", images=8)
        with pytest.raises(QuotaExceeded) as caught:
            _reserve(owner, "job:2", images=3)
        exc = caught.value
        now = timezone.now()
        tomorrow = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
        assert (exc.limit_name, exc.limit, exc.used, exc.requested) == ("images_per_day", 10, 8, 3)
        assert exc.resets_at == tomorrow
        assert "10 images per day" in exc.message and "8 used" in exc.message
        assert tomorrow.isoformat().replace("+00:00", "Z") in exc.message
        assert not UsageRecord.objects.filter(reference="job:2").exists()
        _reserve(owner, "job:3", images=2)  # exactly at the limit is allowed

    def test_gpu_seconds_are_limited_per_calendar_month(self, owner):
        _limits(owner.org, owner.principal, gpu=100)
        _reserve(owner, "job:1", images=1, gpu=60)
        with pytest.raises(QuotaExceeded) as caught:
            _reserve(owner, "job:2", images=1, gpu=50)
        now = timezone.now()
        next_month = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
        assert caught.value.limit_name == "gpu_seconds_per_month"
        assert caught.value.resets_at == next_month

    def test_a_team_limit_holds_even_when_the_organization_has_none(self, owner, persona):
        editor = persona(Role.EDITOR)  # same team as the owner's key
        _limits(owner.org, owner.principal, team=editor.team, images=2)
        _reserve(editor, "job:1", images=2)
        with pytest.raises(QuotaExceeded) as caught:
            _reserve(editor, "job:2", images=1)
        assert caught.value.scope == f"team '{editor.team.slug}'"
        # Usage outside that team is not limited by it.
        quota_reserve(org=owner.org, team=None, images=5, gpu_seconds=0, reference="job:org")

    def test_the_organization_limit_counts_every_team(self, owner):
        other_team = owner.principal.org.teams.create(name="Other", slug="other")
        _limits(owner.org, owner.principal, images=3)
        _reserve(owner, "job:1", images=2)
        quota_reserve(org=owner.org, team=other_team, images=1, gpu_seconds=0, reference="job:2")
        with pytest.raises(QuotaExceeded):
            quota_reserve(org=owner.org, team=other_team, images=1, gpu_seconds=0, reference="j3")

    def test_releasing_a_failed_jobs_reservation_gives_the_quota_back(self, owner):
        _limits(owner.org, owner.principal, images=4)
        _reserve(owner, "job:failed", images=4)
        with pytest.raises(QuotaExceeded):
            _reserve(owner, "job:next", images=1)
        released = quota_release(reference="job:failed")
        assert released.state == "released"
        _reserve(owner, "job:next", images=4)
        assert _used(owner.org, "images") == 4

    def test_settling_records_the_actual_amounts_not_the_estimate(self, owner):
        _reserve(owner, "job:1", images=4, gpu=100.0)
        settled = quota_settle(reference="job:1", images=3, gpu_seconds=42.5)
        assert (settled.state, settled.images, settled.gpu_seconds) == ("settled", 3, 42.5)
        assert _used(owner.org, "gpu_seconds") == 42.5
        assert _used(owner.org, "images") == 3

    def test_every_call_is_idempotent_by_reference(self, owner):
        _limits(owner.org, owner.principal, images=5)
        first = _reserve(owner, "job:1", images=5)
        assert _reserve(owner, "job:1", images=5) == first  # a retried submit reserves once
        quota_settle(reference="job:1", images=5, gpu_seconds=1)
        quota_settle(reference="job:1", images=2, gpu_seconds=9)  # second settle changes nothing
        quota_release(reference="job:1")  # settled usage is not given back
        assert _used(owner.org, "images") == 5
        assert quota_release(reference="job:unknown") is None

    def test_quota_set_is_audited_and_refuses_other_organizations(self, owner, outsider):
        _limits(owner.org, owner.principal, images=7, gpu=3600)
        event = AuditEvent.objects.get(verb="quota.set", organization=owner.org)
        assert event.after == {"images_per_day": 7, "gpu_seconds_per_month": 3600, "team": None}
        from django.core.exceptions import ValidationError

        with pytest.raises(ValidationError):
            _limits(owner.org, outsider.principal, images=1_000_000)


class ReserveView(APIView):
    """Reserve one image for the caller (what a create endpoint does before queuing work)."""

    required_actions = {"post": Action.GENERATE}

    def post(self, request: Request) -> Response:
        p = request.principal
        quota_reserve(
            org=p.org, team=p.team, images=1, gpu_seconds=0, reference=request.data["ref"]
        )
        return Response(status=status.HTTP_201_CREATED)


urlpatterns = [
    path("api/v1/reserve", ReserveView.as_view()),
    path("api/v1/", include(("tenants.api.urls", "api"), namespace="v1")),
]


@pytest.mark.django_db
class TestApi:
    @pytest.fixture(autouse=True)
    def _urls(self, settings):  # type: ignore[no-untyped-def]
        settings.ROOT_URLCONF = __name__

    def test_quota_exceeded_is_a_429_saying_which_limit_and_when_to_retry(self, owner, client_for):
        _limits(owner.org, owner.principal, images=1)
        client = client_for(owner)
        assert client.post("/api/v1/reserve", {"ref": "a"}, format="json").status_code == 201
        response = client.post("/api/v1/reserve", {"ref": "b"}, format="json")
        assert response.status_code == 429
        error = response.json()["error"]
        assert error["code"] == "quota_exceeded"
        assert "organization limit is 1 images per day" in error["message"]
        assert "1 used or reserved, 1 requested" in error["message"]
        now = timezone.now()
        to_midnight = (
            datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1) - now
        ).total_seconds()
        assert 0 < int(response["Retry-After"]) <= to_midnight + 1

    def test_usage_shows_today_and_this_month_with_limits_per_org_and_team(
        self, owner, persona, client_for
    ):
        viewer = persona(Role.VIEWER)
        _limits(owner.org, owner.principal, images=100, gpu=1000)
        _limits(owner.org, owner.principal, team=owner.team, images=10)
        _reserve(owner, "job:1", images=4, gpu=30)
        quota_settle(reference="job:1", images=3, gpu_seconds=20)
        _reserve(owner, "job:2", images=2, gpu=10)
        body = client_for(viewer).get("/api/v1/usage").json()
        org_images = body["organization"]["images_today"]
        assert (org_images["used"], org_images["settled"], org_images["reserved"]) == (5, 3, 2)
        assert (org_images["limit"], org_images["remaining"]) == (100, 95)
        assert body["organization"]["gpu_seconds_this_month"]["used"] == 30
        assert body["organization"]["gpu_seconds_this_month"]["limit"] == 1000
        team = next(t for t in body["teams"] if t["slug"] == owner.team.slug)
        assert team["images_today"]["limit"] == 10
        assert team["images_today"]["used"] == 5
        assert team["gpu_seconds_this_month"]["limit"] is None
        assert org_images["resets_at"].endswith("T00:00:00Z")

    def test_outsider_sees_none_of_our_usage(self, owner, outsider, client_for):
        _reserve(owner, "job:1", images=4)
        body = client_for(outsider).get("/api/v1/usage").json()
        assert body["organization"]["slug"] == outsider.org.slug
        assert body["organization"]["images_today"]["used"] == 0
        assert {t["id"] for t in body["teams"]}.isdisjoint({owner.team.pk})

    def test_owner_sets_a_team_quota_with_put_and_admin_may_not(self, owner, persona, client_for):
        body = {"team": owner.team.pk, "images_per_day": 50, "gpu_seconds_per_month": None}
        denied = client_for(persona(Role.ADMIN)).put("/api/v1/quotas", body, format="json")
        assert denied.status_code == 403
        response = client_for(owner).put("/api/v1/quotas", body, format="json")
        assert response.status_code == 200, response.json()
        assert response.json()["team"] == {"id": owner.team.pk, "slug": owner.team.slug}
        assert Quota.objects.get(team=owner.team).images_per_day == 50
        listed = client_for(owner).get("/api/v1/quotas").json()
        assert {(q["team"] or {}).get("slug") for q in listed} == {None, owner.team.slug}

    def test_quota_put_refuses_negative_limits_and_unknown_fields(self, owner, client_for):
        client = client_for(owner)
        negative = {"images_per_day": -1, "gpu_seconds_per_month": None}
        bad = client.put("/api/v1/quotas", negative, format="json")
        assert bad.status_code == 400
        assert set(bad.json()["error"]["fields"]) == {"images_per_day"}
        unknown = client.put("/api/v1/quotas", {**negative, "tier": "gold"}, format="json")
        assert unknown.status_code == 400
        assert "tier" in unknown.json()["error"]["fields"]
        assert not Quota.objects.exists()

    def test_outsider_gets_404_setting_a_quota_on_another_orgs_team(
        self, owner, outsider, client_for
    ):
        body = {"team": owner.team.pk, "images_per_day": 1, "gpu_seconds_per_month": 1}
        response = client_for(outsider).put("/api/v1/quotas", body, format="json")
        assert response.status_code == 404
        assert not Quota.objects.filter(team=owner.team).exists()


@pytest.mark.django_db(transaction=True)
class TestRaces:
    def test_twenty_concurrent_reservations_at_the_edge_never_pass_the_limit(self, owner):
        require_postgres()
        _limits(owner.org, owner.principal, images=10, gpu=100)
        results = run_concurrently(
            [lambda i=i: _reserve(owner, f"job:{i}", images=1, gpu=10) for i in range(20)]
        )
        refused = [r for r in results if isinstance(r, QuotaExceeded)]
        others = [r for r in results if isinstance(r, Exception) and r not in refused]
        assert not others
        assert len(refused) == 10
        assert _used(owner.org, "images") == 10
        assert _used(owner.org, "gpu_seconds") == 100

    def test_first_reservations_of_an_organization_create_one_counter_row(self, owner):
        require_postgres()
        results = run_concurrently(
            [lambda i=i: _reserve(owner, f"job:{i}", images=1) for i in range(10)]
        )
        assert not [r for r in results if isinstance(r, Exception)]
        assert Quota.objects.filter(organization=owner.org, team=None).count() == 1
        assert _used(owner.org, "images") == 10
