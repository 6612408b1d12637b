"""Webhooks: signatures receivers can verify, delivery with retries and a stable id, the backoff
schedule, which endpoints an event reaches, and the API with tenant isolation."""

from __future__ import annotations

import json
import socket
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from tenants.models import AuditEvent, WebhookDelivery, WebhookEndpoint
from tenants.roles import Role
from tenants.webhooks import (
    WEBHOOK_EVENTS,
    sign,
    verify_signature,
    webhook_deliveries_due,
    webhook_delivery_attempt,
    webhook_endpoint_create,
    webhook_event_emit,
    webhook_retry_delay,
    webhook_secret_generate,
)

pytestmark = pytest.mark.django_db


def _endpoint(p, url, events=("job.succeeded",), team="same"):  # type: ignore[no-untyped-def]
    endpoint, secret = webhook_endpoint_create(
        actor=p.principal, url=url, events=list(events), team=p.team if team == "same" else team
    )
    return endpoint, secret


def _make_due(delivery: WebhookDelivery) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


class TestSignatures:
    def test_a_signed_message_verifies_and_any_change_breaks_it(self):
        secret = webhook_secret_generate()
        body = b'{"type":"job.succeeded","data":{"id":1}}'
        now = int(time.time())
        headers = {
            "Webhook-Id": "d1",
            "Webhook-Timestamp": str(now),
            "Webhook-Signature": sign(secret, delivery_id="d1", timestamp=now, body=body),
        }
        assert secret.startswith("whsec_")
        assert headers["Webhook-Signature"].startswith("v1,")
        assert verify_signature(secret, headers, body)
        assert verify_signature(secret, headers, body.decode())
        assert not verify_signature(secret, headers, body.replace(b"1", b"2"))
        assert not verify_signature(webhook_secret_generate(), headers, body)
        assert not verify_signature(secret, {**headers, "Webhook-Id": "d2"}, body)
        assert not verify_signature(secret, {**headers, "Webhook-Signature": ""}, body)

    def test_an_old_or_future_timestamp_fails_outside_the_tolerance(self):
        secret = webhook_secret_generate()
        old = int(time.time()) - 301
        headers = {
            "webhook-id": "d1",
            "webhook-timestamp": str(old),
            "webhook-signature": sign(secret, delivery_id="d1", timestamp=old, body=b"{}"),
        }
        assert not verify_signature(secret, headers, b"{}")
        assert verify_signature(secret, headers, b"{}", tolerance=600)
        assert not verify_signature(secret, headers, b"{}", now=old - 400)

    def test_the_signature_is_standard_webhooks_hmac_over_id_timestamp_body(self):
        import base64
        import hashlib
        import hmac

        secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
        expected = hmac.new(b"k" * 32, b"msg_1.1700000000.{}", hashlib.sha256).digest()
        signature = sign(secret, delivery_id="msg_1", timestamp=1700000000, body=b"{}")
        assert signature == "v1," + base64.b64encode(expected).decode()


class TestDelivery:
    def test_a_500_is_retried_later_with_the_same_id_then_succeeds(self, owner, receiver):
        receiver.statuses = [500]
        endpoint, secret = _endpoint(owner, receiver.url)
        [delivery] = webhook_event_emit(
            org=owner.org, team=owner.team, event="job.succeeded", payload={"job": "j-1"}
        )

        first = webhook_delivery_attempt(delivery_id=delivery.pk)
        assert first.status == "pending"
        assert first.last_status_code == 500
        assert "receiver says no" in first.last_error
        wait = (first.next_attempt_at - timezone.now()).total_seconds()
        assert 20 <= wait <= 37  # 30 s ± 20 % jitter
        assert webhook_delivery_attempt(delivery_id=delivery.pk) is None  # not due yet

        _make_due(delivery)
        second = webhook_delivery_attempt(delivery_id=delivery.pk)
        assert second.status == "succeeded"
        assert second.delivered_at is not None
        assert (second.attempts, second.next_attempt_at) == (2, None)
        assert [(a.number, a.status_code) for a in second.log.all()] == [(1, 500), (2, 200)]

        ids = {r.headers["webhook-id"] for r in receiver.requests}
        assert ids == {str(delivery.delivery_id)}
        for request in receiver.requests:
            assert verify_signature(secret, request.headers, request.body)
            assert request.headers["User-Agent"] == "Easel-Webhooks/1"
            assert request.headers["Content-Type"] == "application/json"
            assert request.json["type"] == "job.succeeded"
            assert request.json["data"] == {"job": "j-1"}

    def test_a_delivery_fails_after_the_last_attempt(self, owner, receiver, settings):
        settings.EASEL_WEBHOOK_MAX_ATTEMPTS = 2
        receiver.statuses = [503, 503]
        _endpoint(owner, receiver.url)
        [delivery] = webhook_event_emit(
            org=owner.org, team=owner.team, event="job.succeeded", payload={}
        )
        webhook_delivery_attempt(delivery_id=delivery.pk)
        _make_due(delivery)
        final = webhook_delivery_attempt(delivery_id=delivery.pk)
        assert (final.status, final.attempts, final.next_attempt_at) == ("failed", 2, None)
        assert final.last_status_code == 503

    def test_an_unreachable_receiver_is_a_failed_attempt_with_the_error(self, owner, settings):
        settings.EASEL_WEBHOOK_ALLOW_PRIVATE = True
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        _endpoint(owner, f"http://127.0.0.1:{port}/hook")
        [delivery] = webhook_event_emit(
            org=owner.org, team=owner.team, event="job.succeeded", payload={}
        )
        attempted = webhook_delivery_attempt(delivery_id=delivery.pk)
        assert attempted.status == "pending"
        assert attempted.last_status_code is None
        assert "ConnectionRefusedError" in attempted.last_error
        assert attempted.log.get().error == attempted.last_error

    def test_the_backoff_grows_from_30_seconds_to_8_hours(self):
        nominal = [webhook_retry_delay(n, jitter=0).total_seconds() for n in range(1, 8)]
        assert nominal == [30, 120, 480, 1920, 7680, 28800, 28800]
        assert sum(nominal) < 24 * 3600
        for n in range(1, 8):
            jittered = webhook_retry_delay(n).total_seconds()
            assert 0.8 * nominal[n - 1] <= jittered <= 1.2 * nominal[n - 1]

    def test_a_deactivated_endpoint_gets_nothing_more(self, owner, receiver):
        endpoint, _ = _endpoint(owner, receiver.url)
        [delivery] = webhook_event_emit(
            org=owner.org, team=owner.team, event="job.succeeded", payload={}
        )
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(active=False)
        attempted = webhook_delivery_attempt(delivery_id=delivery.pk)
        assert attempted.status == "failed"
        assert "deactivated" in attempted.last_error
        assert receiver.requests == []

    def test_the_sweeper_finds_due_deliveries_and_dead_workers_leases(self, owner, receiver):
        _endpoint(owner, receiver.url)
        [delivery] = webhook_event_emit(
            org=owner.org, team=owner.team, event="job.succeeded", payload={}
        )
        assert delivery.pk in webhook_deliveries_due()
        # A worker claimed it and died: it is not due until the lease runs out.
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            next_attempt_at=timezone.now() + timedelta(minutes=1)
        )
        assert delivery.pk not in webhook_deliveries_due()
        assert delivery.pk in webhook_deliveries_due(now=timezone.now() + timedelta(minutes=2))


class TestEmit:
    def test_an_event_reaches_subscribed_active_endpoints_of_its_team_and_org_wide_ones(
        self, owner, outsider, receiver, django_capture_on_commit_callbacks
    ):
        other_team = owner.org.teams.create(name="Other", slug="other")
        team_hook, _ = _endpoint(owner, receiver.url + "/team")
        org_hook, _ = _endpoint(owner, receiver.url + "/org", team=None)
        _endpoint(owner, receiver.url + "/other", team=other_team)
        _endpoint(owner, receiver.url + "/failed-only", events=["job.failed"])
        inactive, _ = _endpoint(owner, receiver.url + "/inactive")
        WebhookEndpoint.objects.filter(pk=inactive.pk).update(active=False)
        _endpoint(outsider, receiver.url + "/outsider")

        with django_capture_on_commit_callbacks() as callbacks:
            deliveries = webhook_event_emit(
                org=owner.org, team=owner.team, event="job.succeeded", payload={"id": 7}
            )
        assert {d.endpoint_id for d in deliveries} == {team_hook.pk, org_hook.pk}
        assert len(callbacks) == 2  # one delivery task each, enqueued after commit
        assert len({d.delivery_id for d in deliveries}) == 2

    def test_a_team_less_event_reaches_org_wide_endpoints_only(self, owner, receiver):
        _endpoint(owner, receiver.url + "/team", events=["catalog_run.completed"])
        org_hook, _ = _endpoint(owner, receiver.url, events=["catalog_run.completed"], team=None)
        deliveries = webhook_event_emit(
            org=owner.org, team=None, event="catalog_run.completed", payload={}
        )
        assert [d.endpoint_id for d in deliveries] == [org_hook.pk]

    def test_an_unknown_event_is_a_programming_error(self, owner):
        with pytest.raises(ValueError, match="Unknown webhook event"):
            webhook_event_emit(org=owner.org, team=None, event="job.exploded", payload={})

    def test_the_event_registry_is_what_the_docs_promise(self):
        assert set(WEBHOOK_EVENTS) == {
            "job.succeeded",
            "job.failed",
            "job.failed_quality",
            "job.canceled",
            "training.succeeded",
            "training.failed",
            "catalog_run.completed",
        }


class TestApi:
    def _create(self, client, url, **headers):  # type: ignore[no-untyped-def]
        body = {"url": url, "events": ["job.succeeded", "job.failed"]}
        return client.post("/api/v1/webhooks", body, format="json", **headers)

    def test_create_shows_the_secret_once_and_is_audited(
        self, persona, client_for, receiver, django_capture_on_commit_callbacks
    ):
        admin = persona(Role.ADMIN)
        client = client_for(admin)
        created = self._create(client, receiver.url)
        assert created.status_code == 201, created.json()
        body = created.json()
        assert body["secret"].startswith("whsec_")
        assert created["Location"] == f"/api/v1/webhooks/{body['id']}"
        assert body["team"] is None and body["active"] is True
        assert "secret" not in client.get(f"/api/v1/webhooks/{body['id']}").json()
        assert all("secret" not in w for w in client.get("/api/v1/webhooks").json()["results"])
        assert AuditEvent.objects.filter(verb="webhook.created", object_id=str(body["id"])).exists()

    def test_create_refuses_unsafe_urls_and_unknown_events_with_clear_messages(
        self, owner, client_for
    ):
        client = client_for(owner)
        metadata = self._create(client, "http://169.254.169.254/latest/meta-data/")
        assert metadata.status_code == 400
        assert "link-local" in metadata.json()["error"]["fields"]["url"]
        scheme = self._create(client, "file:///etc/passwd")
        assert "use an http:// or https:// URL" in scheme.json()["error"]["message"]
        events = client.post(
            "/api/v1/webhooks", {"url": "https://x.test/", "events": ["job.nope"]}, format="json"
        )
        assert events.status_code == 400 and "events" in events.json()["error"]["fields"]
        assert not WebhookEndpoint.objects.exists()

    def test_members_without_manage_keys_cannot_create_but_can_read(
        self, owner, persona, client_for, receiver
    ):
        hook, _ = _endpoint(owner, receiver.url)
        editor = client_for(persona(Role.EDITOR))
        assert self._create(editor, receiver.url).status_code == 403
        assert editor.get(f"/api/v1/webhooks/{hook.pk}").status_code == 200
        assert editor.post(f"/api/v1/webhooks/{hook.pk}/test").status_code == 403
        assert editor.delete(f"/api/v1/webhooks/{hook.pk}").status_code == 403

    def test_create_with_an_idempotency_key_makes_one_endpoint(self, owner, client_for, receiver):
        client = client_for(owner)
        first = self._create(client, receiver.url, HTTP_IDEMPOTENCY_KEY="hook-1")
        again = self._create(client, receiver.url, HTTP_IDEMPOTENCY_KEY="hook-1")
        assert again["Idempotent-Replayed"] == "true"
        assert again.json()["id"] == first.json()["id"]
        assert WebhookEndpoint.objects.count() == 1

    def test_test_sends_a_ping_and_the_log_shows_it(
        self, owner, client_for, receiver, django_capture_on_commit_callbacks
    ):
        hook, secret = _endpoint(owner, receiver.url)
        client = client_for(owner)
        with django_capture_on_commit_callbacks() as callbacks:
            ping = client.post(f"/api/v1/webhooks/{hook.pk}/test")
        assert ping.status_code == 202
        assert ping.json()["event"] == "ping" and len(callbacks) == 1
        webhook_delivery_attempt(delivery_id=ping.json()["id"])
        [received] = receiver.requests
        assert received.json["type"] == "ping"
        assert verify_signature(secret, received.headers, received.body)
        log = client.get(f"/api/v1/webhooks/{hook.pk}/deliveries").json()["results"]
        assert [(d["event"], d["status"]) for d in log] == [("ping", "succeeded")]
        assert log[0]["attempt_log"][0]["status_code"] == 200
        assert log[0]["delivery_id"] == received.headers["webhook-id"]

    def test_redeliver_sends_a_failed_delivery_again_with_the_same_id(
        self, owner, client_for, receiver, settings
    ):
        settings.EASEL_WEBHOOK_MAX_ATTEMPTS = 1
        receiver.statuses = [500]
        _endpoint(owner, receiver.url)
        [delivery] = webhook_event_emit(
            org=owner.org, team=owner.team, event="job.succeeded", payload={}
        )
        assert webhook_delivery_attempt(delivery_id=delivery.pk).status == "failed"
        response = client_for(owner).post(f"/api/v1/webhook-deliveries/{delivery.pk}/redeliver")
        assert response.status_code == 202
        assert response.json()["status"] == "pending"
        assert webhook_delivery_attempt(delivery_id=delivery.pk).status == "succeeded"
        assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
        assert len(receiver.requests) == 2

    def test_delete_deactivates_and_keeps_the_log(self, owner, client_for, receiver):
        hook, _ = _endpoint(owner, receiver.url)
        webhook_event_emit(org=owner.org, team=owner.team, event="job.succeeded", payload={})
        client = client_for(owner)
        assert client.delete(f"/api/v1/webhooks/{hook.pk}").status_code == 204
        hook.refresh_from_db()
        assert hook.active is False
        assert len(client.get(f"/api/v1/webhooks/{hook.pk}/deliveries").json()["results"]) == 1
        assert client.post(f"/api/v1/webhooks/{hook.pk}/test").status_code == 400

    def test_outsider_gets_404_for_another_orgs_webhooks_and_deliveries(
        self, owner, outsider, client_for, receiver
    ):
        hook, _ = _endpoint(owner, receiver.url)
        [delivery] = webhook_event_emit(
            org=owner.org, team=owner.team, event="job.succeeded", payload={}
        )
        client = client_for(outsider)
        for response in (
            client.get(f"/api/v1/webhooks/{hook.pk}"),
            client.get(f"/api/v1/webhooks/{hook.pk}/deliveries"),
            client.post(f"/api/v1/webhooks/{hook.pk}/test"),
            client.delete(f"/api/v1/webhooks/{hook.pk}"),
            client.get(f"/api/v1/webhook-deliveries/{delivery.pk}"),
            client.post(f"/api/v1/webhook-deliveries/{delivery.pk}/redeliver"),
        ):
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "not_found"
        missing = client.get("/api/v1/webhooks/999999")
        assert missing.json() == client.get(f"/api/v1/webhooks/{hook.pk}").json()
        assert client.get("/api/v1/webhooks").json()["results"] == []
        hook.refresh_from_db()
        assert hook.active is True
        assert WebhookDelivery.objects.get(pk=delivery.pk).status == "pending"

    def test_a_payload_with_dates_and_uuids_is_serialized(self, owner, receiver):
        import uuid

        _endpoint(owner, receiver.url)
        job_id = uuid.uuid4()
        [delivery] = webhook_event_emit(
            org=owner.org,
            team=owner.team,
            event="job.succeeded",
            payload={"job": job_id, "at": timezone.now()},
        )
        webhook_delivery_attempt(delivery_id=delivery.pk)
        assert json.loads(receiver.requests[0].body)["data"]["job"] == str(job_id)


class TestTasks:
    def test_a_failed_attempt_schedules_its_retry_and_the_sweeper_enqueues_due_ones(
        self, owner, receiver, monkeypatch
    ):
        from tenants import tasks

        receiver.statuses = [500]
        _endpoint(owner, receiver.url)
        [delivery] = webhook_event_emit(
            org=owner.org, team=owner.team, event="job.succeeded", payload={}
        )
        scheduled: list[dict] = []
        monkeypatch.setattr(
            tasks.webhook_delivery_attempt_task,
            "apply_async",
            lambda args, countdown: scheduled.append({"args": args, "countdown": countdown}),
        )
        tasks.webhook_delivery_attempt_task.run(delivery.pk)
        assert scheduled[0]["args"] == [delivery.pk]
        assert 20 <= scheduled[0]["countdown"] <= 37

        enqueued: list[int] = []
        monkeypatch.setattr(tasks.webhook_delivery_attempt_task, "delay", enqueued.append)
        assert tasks.webhook_deliveries_sweep_task.run() == 0  # retry not due yet
        _make_due(delivery)
        assert tasks.webhook_deliveries_sweep_task.run() == 1
        assert enqueued == [delivery.pk]
