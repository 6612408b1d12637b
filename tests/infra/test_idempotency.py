"""Idempotency keys: replay, conflicts, what is saved, expiry, and concurrent requests.

The create under test is a tiny view defined here (it creates a team through the service), so
these tests do not depend on any other app's API.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.urls import path
from django.utils import timezone
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants import services
from tenants.api.base import StrictSerializer
from tenants.api.idempotency import idempotent, with_idempotency
from tenants.idempotency import idempotency_records_purge
from tenants.models import IdempotencyRecord, Team
from tenants.roles import Action

from .conftest import require_postgres, run_concurrently


class _Body(StrictSerializer):
    slug = serializers.SlugField()
    name = serializers.CharField(required=False, default="Made")


class ProcessDied(BaseException):  # noqa: N818 - stands for the process being killed
    """Raised where a real process would be killed: nothing after it runs, nothing commits."""


class TeamCreateView(APIView):
    """POST {"slug"} creates a team; slug "boom" raises, as a bug in a view would; slug "die"
    creates the team and then the process dies before the response is saved."""

    required_actions = {"post": Action.MANAGE_ORG}
    calls = 0
    entered: threading.Event | None = None
    release: threading.Event | None = None

    @idempotent
    def post(self, request: Request) -> Response:
        type(self).calls += 1
        if self.entered is not None and self.release is not None:
            self.entered.set()
            self.release.wait(30)
        body = _Body(data=request.data)
        body.is_valid(raise_exception=True)
        if body.validated_data["slug"] == "boom":
            raise RuntimeError("a bug in the view")
        team = services.team_create(actor=request.principal, **body.validated_data)
        if team.slug == "die" and type(self).calls == 1:
            raise ProcessDied
        return Response(
            {"id": team.pk, "slug": team.slug},
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/api/v1/teams/{team.pk}"},
        )


class OtherCreateView(APIView):
    required_actions = {"post": Action.MANAGE_ORG}

    def post(self, request: Request) -> Response:
        return with_idempotency(request, lambda: Response({"other": True}, status=201), view=self)


urlpatterns = [
    path("api/v1/things", TeamCreateView.as_view()),
    path("api/v1/other-things", OtherCreateView.as_view()),
]


@pytest.fixture(autouse=True)
def _urls(settings):  # type: ignore[no-untyped-def]
    settings.ROOT_URLCONF = __name__
    TeamCreateView.calls = 0
    TeamCreateView.entered = TeamCreateView.release = None


def _post(client, body, key="key-1", url="/api/v1/things"):  # type: ignore[no-untyped-def]
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return client.post(url, body, format="json", **headers)


@pytest.mark.django_db
class TestReplayAndConflicts:
    def test_same_key_and_body_replays_the_first_response_without_running_again(
        self, owner, client_for
    ):
        client = client_for(owner)
        first = _post(client, {"slug": "spring", "name": "Spring"})
        again = _post(client, {"name": "Spring", "slug": "spring"})  # key order does not count
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json()
        assert again["Location"] == first["Location"] == f"/api/v1/teams/{first.json()['id']}"
        assert again["Idempotent-Replayed"] == "true"
        assert not first.has_header("Idempotent-Replayed")
        assert TeamCreateView.calls == 1
        assert Team.objects.filter(slug="spring").count() == 1

    def test_same_key_with_another_body_is_a_conflict_naming_the_body(self, owner, client_for):
        client = client_for(owner)
        assert _post(client, {"slug": "spring"}).status_code == 201
        response = _post(client, {"slug": "summer"})
        assert response.status_code == 409
        error = response.json()["error"]
        assert error["code"] == "idempotency_key_reused"
        assert "different request body" in error["message"]
        assert not Team.objects.filter(slug="summer").exists()

    def test_same_key_on_another_path_is_a_conflict_naming_the_first_path(self, owner, client_for):
        client = client_for(owner)
        assert _post(client, {"slug": "spring"}).status_code == 201
        response = _post(client, {"slug": "spring"}, url="/api/v1/other-things")
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "idempotency_key_reused"
        assert "POST /api/v1/things" in response.json()["error"]["message"]

    def test_without_a_key_every_request_runs(self, owner, client_for):
        client = client_for(owner)
        assert _post(client, {"slug": "a"}, key=None).status_code == 201
        assert _post(client, {"slug": "a"}, key=None).status_code == 400  # slug taken
        assert not IdempotencyRecord.objects.exists()

    def test_a_validation_error_is_not_saved_so_the_same_key_can_be_retried(
        self, owner, client_for
    ):
        client = client_for(owner)
        bad = _post(client, {"slug": "not a slug!"})
        assert bad.status_code == 400
        assert bad.json()["error"]["fields"]["slug"]
        fixed = _post(client, {"slug": "fixed"})
        assert fixed.status_code == 201
        assert not fixed.has_header("Idempotent-Replayed")

    def test_a_server_error_is_saved_and_replayed(self, owner, client_for):
        client = client_for(owner)
        first = _post(client, {"slug": "boom"})
        assert first.status_code == 500
        assert first.json()["error"]["code"] == "server_error"
        again = _post(client, {"slug": "boom"})
        assert again.status_code == 500
        assert again["Idempotent-Replayed"] == "true"
        assert again.json() == first.json()
        assert TeamCreateView.calls == 1

    @pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "caf\u00e9"])
    def test_a_malformed_key_is_a_400_saying_what_a_key_must_be(self, key, owner, client_for):
        response = _post(client_for(owner), {"slug": "x"}, key=key)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_idempotency_key"
        assert "1-255 printable" in response.json()["error"]["message"]
        assert TeamCreateView.calls == 0

    def test_keys_belong_to_one_organization(self, owner, outsider, client_for):
        mine = _post(client_for(owner), {"slug": "spring"})
        theirs = _post(client_for(outsider), {"slug": "spring"})
        assert mine.status_code == theirs.status_code == 201
        assert not theirs.has_header("Idempotent-Replayed")
        assert theirs.json()["id"] != mine.json()["id"]

    def test_keys_belong_to_one_api_key_so_a_teammate_never_gets_anothers_response(
        self, owner, client_for
    ):
        from rest_framework.test import APIClient

        # Another service of the same team: same organization and team, its own API key.
        _key, raw = services.api_key_create(
            actor=owner.principal, team=owner.team, name="other service", scopes=[Action.MANAGE_ORG]
        )
        teammate = APIClient()
        teammate.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        mine = _post(client_for(owner), {"slug": "spring"})
        theirs = _post(teammate, {"slug": "summer"})
        assert mine.status_code == theirs.status_code == 201
        assert not theirs.has_header("Idempotent-Replayed")
        assert theirs.json()["slug"] == "summer"
        assert Team.objects.filter(slug="summer").exists()

    def test_purge_deletes_keys_older_than_the_ttl_only(self, owner, client_for, settings):
        settings.EASEL_IDEMPOTENCY_TTL_HOURS = 48
        client = client_for(owner)
        _post(client, {"slug": "old"}, key="old")
        _post(client, {"slug": "new"}, key="new")
        IdempotencyRecord.objects.filter(key="old").update(
            created_at=timezone.now() - timedelta(hours=49)
        )
        assert idempotency_records_purge() == 1
        assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]

    def test_an_expired_key_is_free_again_even_before_the_purge(self, owner, client_for):
        client = client_for(owner)
        _post(client, {"slug": "first"})
        IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(days=3))
        second = _post(client, {"slug": "second"})
        assert second.status_code == 201
        assert not second.has_header("Idempotent-Replayed")


@pytest.mark.django_db(transaction=True)
class TestCrashSafety:
    def test_a_process_dying_after_its_writes_commits_nothing_and_frees_the_key(
        self, owner, client_for, settings
    ):
        require_postgres()
        client = client_for(owner)
        with pytest.raises(ProcessDied):
            _post(client, {"slug": "die"})
        # The team and the saved response share one transaction: neither was committed.
        assert not Team.objects.filter(slug="die").exists()
        record = IdempotencyRecord.objects.get(key="key-1")
        assert record.state == IdempotencyRecord.State.IN_PROGRESS
        # While the dead request's lock is fresh, a retry is told to wait, not run twice.
        assert _post(client, {"slug": "die"}).json()["error"]["code"] == "idempotency_in_progress"
        IdempotencyRecord.objects.update(
            created_at=timezone.now()
            - timedelta(seconds=settings.EASEL_IDEMPOTENCY_LOCK_SECONDS + 1)
        )
        retry = _post(client, {"slug": "die"})
        assert retry.status_code == 201 and not retry.has_header("Idempotent-Replayed")
        assert Team.objects.filter(slug="die").count() == 1
        assert _post(client, {"slug": "die"})["Idempotent-Replayed"] == "true"


@pytest.mark.django_db(transaction=True)
class TestConcurrency:
    def test_a_request_while_the_first_is_in_progress_gets_409_in_progress(self, owner, client_for):
        require_postgres()
        TeamCreateView.entered, TeamCreateView.release = threading.Event(), threading.Event()
        first: dict = {}

        def first_request() -> None:
            try:
                first["response"] = _post(client_for(owner), {"slug": "slow"})
            finally:
                from django.db import connections

                connections.close_all()

        thread = threading.Thread(target=first_request)
        thread.start()
        assert TeamCreateView.entered.wait(30)
        during = _post(client_for(owner), {"slug": "slow"})
        TeamCreateView.release.set()
        thread.join(30)
        assert during.status_code == 409
        assert during.json()["error"]["code"] == "idempotency_in_progress"
        assert first["response"].status_code == 201
        after = _post(client_for(owner), {"slug": "slow"})
        assert after["Idempotent-Replayed"] == "true"
        assert after.json() == first["response"].json()
        assert Team.objects.filter(slug="slow").count() == 1

    def test_truly_concurrent_requests_with_one_key_create_one_resource(self, owner, client_for):
        require_postgres()
        clients = [client_for(owner) for _ in range(8)]
        responses = run_concurrently(
            [lambda c=c: _post(c, {"slug": "race"}, key="race-key") for c in clients]
        )
        assert not [r for r in responses if isinstance(r, Exception)]
        created = [r for r in responses if r.status_code == 201]
        refused = [r for r in responses if r.status_code == 409]
        assert len(created) + len(refused) == len(responses)
        assert {r.json()["error"]["code"] for r in refused} <= {"idempotency_in_progress"}
        assert len({r.json()["id"] for r in created}) == 1  # replays carry the same id
        assert Team.objects.filter(slug="race").count() == 1
        assert TeamCreateView.calls == 1
