"""``easel_client.webhooks.verify`` (the client's own code) against what the server really sends:
a ping delivered by ``tenants.webhooks`` to a local receiver is accepted; the same delivery with
a changed body, another secret, or an old timestamp is refused."""

from __future__ import annotations

import json
import time

import pytest
from easel_client import WebhookVerificationError, webhooks

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def delivery(owner, receiver, settings):  # type: ignore[no-untyped-def]
    """A real delivery as received over HTTP: (secret, headers, body)."""
    from tenants.webhooks import (
        webhook_delivery_attempt,
        webhook_endpoint_create,
        webhook_endpoint_ping,
    )

    settings.EASEL_WEBHOOK_ALLOW_PRIVATE = True
    url, received = receiver
    endpoint, secret = webhook_endpoint_create(
        actor=owner.principal, url=url, events=["job.succeeded"]
    )
    sent = webhook_endpoint_ping(actor=owner.principal, endpoint=endpoint)
    webhook_delivery_attempt(delivery_id=sent.pk)  # what the worker's task does
    assert len(received) == 1
    headers, body = received[0]
    return secret, headers, body


def test_a_real_delivery_verifies_and_returns_its_event(delivery):
    secret, headers, body = delivery
    event = webhooks.verify(secret, headers, body)
    assert event["type"] == "ping" and event["data"]["message"] == "Hello from Easel"
    assert webhooks.is_valid(secret, {k.upper(): v for k, v in headers.items()}, body.decode())


def test_a_changed_body_or_another_secret_is_refused(delivery):
    secret, headers, body = delivery
    tampered = json.dumps(json.loads(body) | {"type": "job.succeeded"}).encode()
    with pytest.raises(WebhookVerificationError, match="No signature matches"):
        webhooks.verify(secret, headers, tampered)
    other_secret = "whsec_" + "A" * 43 + "="
    assert not webhooks.is_valid(other_secret, headers, body)
    assert not webhooks.is_valid(secret, headers | {"webhook-id": "another-id"}, body)


def test_an_old_or_future_timestamp_is_refused_even_when_signed(delivery):
    from tenants.webhooks import sign

    secret, headers, body = delivery
    delivery_id = headers["webhook-id"]
    old = int(time.time()) - 301
    replayed = headers | {
        "webhook-timestamp": str(old),
        "webhook-signature": sign(secret, delivery_id=delivery_id, timestamp=old, body=body),
    }
    with pytest.raises(WebhookVerificationError, match="old"):
        webhooks.verify(secret, replayed, body)
    assert webhooks.is_valid(secret, replayed, body, tolerance=600)
    sent_at = int(headers["webhook-timestamp"])
    assert not webhooks.is_valid(secret, headers, body, now=sent_at - 400)
    assert not webhooks.is_valid(secret, headers | {"webhook-timestamp": "soon"}, body)


def test_a_rotated_secret_matches_any_of_several_signatures(delivery):
    secret, headers, body = delivery
    rotated = headers | {"webhook-signature": f"v1,bm90LWl0 {headers['webhook-signature']}"}
    assert webhooks.verify(secret, rotated, body)["type"] == "ping"
