"""Signed webhooks: endpoints, events, deliveries with retries, and signature verification.

Events (``WEBHOOK_EVENTS``) are emitted by services with ``webhook_event_emit``; each matching
active endpoint (the event's team's, and the organization-wide ones) gets a ``WebhookDelivery``
that a ``default``-queue task POSTs after the transaction commits.

Wire format (Standard Webhooks): a JSON body ``{"type", "timestamp", "data"}`` and the headers
``webhook-id`` (the delivery id, the same on every retry: receivers drop duplicates by it),
``webhook-timestamp`` (unix seconds of this attempt) and ``webhook-signature: v1,<base64
HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`` where the key is the base64-decoded part of the
endpoint's ``whsec_...`` secret. ``verify_signature`` checks all of it for receivers.

Retries: anything but a 2xx within ``EASEL_WEBHOOK_TIMEOUT`` is a failed attempt; the next one is
due after ``webhook_retry_delay`` (30 s × 4^(n-1), at most 8 h, ±20 % jitter): 30 s, 2 min, 8 min,
32 min, 2 h, 8 h, 8 h — ``EASEL_WEBHOOK_MAX_ATTEMPTS`` (8) attempts over about 19 hours, then the
delivery is ``failed`` (it can be redelivered by hand). Each attempt is logged with its status
code, error and duration.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import random
import secrets
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from .audit import AuditVerb
from .models import (
    Organization,
    Team,
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
)
from .net import UnsafeUrlError, post_pinned, validate_public_url
from .principal import Principal
from .roles import Action
from .selectors import get_for_org
from .services import audit_event_record, require

logger = logging.getLogger(__name__)

# The events an endpoint may subscribe to, and when each is sent.
WEBHOOK_EVENTS: dict[str, str] = {
    "job.succeeded": "A generation job finished; its images passed the quality gate.",
    "job.failed": "A generation job failed (out of attempts or an error).",
    "job.failed_quality": "No image of a generation job passed the quality gate within its "
    "attempts (every attempt kept, with the reasons).",
    "job.canceled": "A generation job was canceled.",
    "training.succeeded": "A fine-tuning job produced a new candidate model version.",
    "training.failed": "A fine-tuning job failed.",
    "catalog_run.completed": "A catalog run finished and its export is ready.",
}
# Sent only by "POST /webhooks/{id}/test", to that endpoint, whatever it subscribes to.
PING_EVENT = "ping"

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
USER_AGENT = "Easel-Webhooks/1"
RETRY_BASE_SECONDS = 30
RETRY_FACTOR = 4
RETRY_CAP_SECONDS = 8 * 3600
RETRY_JITTER = 0.2
_jitter_rng = random.SystemRandom()

Status = WebhookDelivery.Status


# --- Signing -------------------------------------------------------------------------------------


def webhook_secret_generate() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _secret_key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError:
        return raw.encode()


def sign(secret: str, *, delivery_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one attempt."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    tolerance: int = 300,
    *,
    now: float | None = None,
) -> bool:
    """True if ``headers`` carry a valid signature of ``body`` made with ``secret`` within
    ``tolerance`` seconds of now (for receivers; replayed old messages fail)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    delivery_id = lowered.get("webhook-id")
    timestamp = lowered.get("webhook-timestamp", "")
    signatures = lowered.get("webhook-signature", "")
    if not delivery_id or not timestamp.isdigit() or not signatures:
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        return False
    if isinstance(body, str):
        body = body.encode()
    expected = sign(secret, delivery_id=delivery_id, timestamp=int(timestamp), body=body)
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures.split())


def webhook_retry_delay(attempt: int, *, jitter: float = RETRY_JITTER) -> timedelta:
    """How long to wait after failed attempt number ``attempt`` (1-based)."""
    nominal = min(RETRY_BASE_SECONDS * RETRY_FACTOR ** max(0, attempt - 1), RETRY_CAP_SECONDS)
    return timedelta(seconds=nominal * (1 + _jitter_rng.uniform(-jitter, jitter)))


# --- Reads ---------------------------------------------------------------------------------------


def webhook_endpoint_list_for_org(*, org: Organization) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(organization=org).select_related("team", "created_by")


def get_webhook_endpoint_for_org(*, org: Organization, endpoint_id: int | str) -> WebhookEndpoint:
    return get_for_org(webhook_endpoint_list_for_org(org=org), org=org, pk=endpoint_id)


def webhook_delivery_list_for_endpoint(*, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(
        organization_id=endpoint.organization_id, endpoint=endpoint
    ).prefetch_related("log")


def webhook_delivery_list_for_org(*, org: Organization) -> QuerySet[WebhookDelivery]:
    return (
        WebhookDelivery.objects.filter(organization=org)
        .select_related("endpoint")
        .prefetch_related("log")
    )


def get_webhook_delivery_for_org(*, org: Organization, delivery_id: int | str) -> WebhookDelivery:
    return get_for_org(webhook_delivery_list_for_org(org=org), org=org, pk=delivery_id)


def webhook_deliveries_due(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Ids of pending deliveries whose next attempt (or a dead worker's lease) is due."""
    now = now or timezone.now()
    return list(
        WebhookDelivery.objects.filter(status=Status.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


# --- Writes --------------------------------------------------------------------------------------


def _enqueue_on_commit(delivery_ids: list[int]) -> None:
    from .tasks import webhook_delivery_attempt_task

    for delivery_id in delivery_ids:
        transaction.on_commit(
            lambda delivery_id=delivery_id: webhook_delivery_attempt_task.delay(delivery_id)
        )


def _validated_events(events: list[str]) -> list[str]:
    events = list(dict.fromkeys(events))
    unknown = [e for e in events if e not in WEBHOOK_EVENTS]
    if not events or unknown:
        raise ValidationError(
            {"events": f"Unknown events {unknown}; subscribe to any of {sorted(WEBHOOK_EVENTS)}."}
        )
    return events


def _checked_url(url: str) -> str:
    try:
        validate_public_url(url)
    except UnsafeUrlError as exc:
        raise ValidationError({"url": str(exc)}) from None
    return url


def webhook_endpoint_create(
    *,
    actor: Principal,
    url: str,
    events: list[str],
    team: Team | None = None,
    description: str = "",
) -> tuple[WebhookEndpoint, str]:
    """Create an endpoint; returns it and its signing secret (shown to the user only now)."""
    require(actor, Action.MANAGE_KEYS)
    if team is not None and team.organization_id != actor.org.pk:
        raise ValidationError({"team": "No such team in this organization."})
    events = _validated_events(events)
    _checked_url(url)  # resolves DNS: outside the transaction
    secret = webhook_secret_generate()
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(
            organization=actor.org,
            team=team,
            url=url,
            description=description,
            secret=secret,
            events=events,
            created_by=actor.user,
        )
        audit_event_record(
            org=actor.org,
            actor=actor,
            verb=AuditVerb.WEBHOOK_CREATED,
            obj=endpoint,
            after={"url": url, "events": events, "team": team.slug if team else None},
        )
    return endpoint, secret


@transaction.atomic
def webhook_endpoint_deactivate(*, actor: Principal, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Stop sending to ``endpoint``; its pending deliveries fail at their next attempt."""
    require(actor, Action.MANAGE_KEYS)
    if endpoint.active:
        endpoint.active = False
        endpoint.deactivated_at = timezone.now()
        endpoint.save(update_fields=["active", "deactivated_at"])
        audit_event_record(
            org=actor.org,
            actor=actor,
            verb=AuditVerb.WEBHOOK_DEACTIVATED,
            obj=endpoint,
            before={"active": True},
            after={"active": False},
        )
    return endpoint


def _envelope(event: str, payload: dict, now: datetime) -> dict:
    data = json.loads(json.dumps(payload, cls=DjangoJSONEncoder))
    return {"type": event, "timestamp": now.isoformat().replace("+00:00", "Z"), "data": data}


@transaction.atomic
def webhook_event_emit(
    *, org: Organization, team: Team | None, event: str, payload: dict
) -> list[WebhookDelivery]:
    """Create a delivery of ``event`` for every active endpoint subscribed to it (the team's and
    the organization-wide ones; a team-less event goes to organization-wide endpoints only) and
    send them once the caller's transaction commits."""
    if event not in WEBHOOK_EVENTS:
        raise ValueError(f"Unknown webhook event {event!r}; add it to WEBHOOK_EVENTS first.")
    scope = Q(team__isnull=True) | Q(team=team) if team is not None else Q(team__isnull=True)
    endpoints = WebhookEndpoint.objects.filter(scope, organization=org, active=True)
    now = timezone.now()
    body = _envelope(event, payload, now)
    deliveries = [
        WebhookDelivery.objects.create(
            organization=org,
            endpoint=endpoint,
            event=event,
            delivery_id=uuid.uuid4(),
            payload=body,
            next_attempt_at=now,
            created_at=now,
        )
        for endpoint in endpoints
        if event in endpoint.events  # JSON containment is not portable to SQLite
    ]
    _enqueue_on_commit([d.pk for d in deliveries])
    return deliveries


@transaction.atomic
def webhook_endpoint_ping(*, actor: Principal, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Send a ``ping`` event to ``endpoint`` (to check the URL and the receiver's signature
    verification)."""
    require(actor, Action.MANAGE_KEYS)
    if not endpoint.active:
        raise ValidationError({"endpoint": "This webhook is deactivated; create a new one."})
    now = timezone.now()
    delivery = WebhookDelivery.objects.create(
        organization=endpoint.organization,
        endpoint=endpoint,
        event=PING_EVENT,
        payload=_envelope(PING_EVENT, {"webhook": endpoint.pk, "message": "Hello from Easel"}, now),
        next_attempt_at=now,
        created_at=now,
    )
    _enqueue_on_commit([delivery.pk])
    return delivery


@transaction.atomic
def webhook_delivery_redeliver(*, actor: Principal, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery again now, with the same ``webhook-id`` (a failed one gets one more
    attempt; a pending one is moved forward; a succeeded one is sent again)."""
    require(actor, Action.MANAGE_KEYS)
    if not delivery.endpoint.active:
        raise ValidationError({"endpoint": "This webhook is deactivated; create a new one."})
    before = {"status": delivery.status, "attempts": delivery.attempts}
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=Status.PENDING, next_attempt_at=timezone.now()
    )
    delivery.refresh_from_db()
    audit_event_record(
        org=delivery.organization,
        actor=actor,
        verb=AuditVerb.WEBHOOK_DELIVERY_REDELIVERED,
        obj=delivery,
        before=before,
        after={"status": delivery.status},
    )
    _enqueue_on_commit([delivery.pk])
    return delivery


def _lease() -> timedelta:
    # Longer than one attempt can take (connect + send + read, each bounded by the timeout).
    return timedelta(seconds=3 * settings.EASEL_WEBHOOK_TIMEOUT + 30)


def webhook_delivery_attempt(*, delivery_id: int) -> WebhookDelivery | None:
    """Make the next attempt of a delivery if it is due; returns it, or None if it was not due,
    not pending, or another worker claimed it.

    The claim is a conditional update (pending and due → attempts + 1, due again only after a
    lease), so a task delivered twice, or a task racing the sweeper, sends once.
    """
    now = timezone.now()
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, status=Status.PENDING, next_attempt_at__lte=now
    ).update(attempts=F("attempts") + 1, next_attempt_at=now + _lease())
    if claimed != 1:
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    status_code: int | None = None
    started = time.monotonic()
    if not endpoint.active:
        error = "The webhook was deactivated; nothing was sent."
    else:
        body = json.dumps(delivery.payload, sort_keys=True, separators=(",", ":")).encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": str(delivery.delivery_id),
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(
                endpoint.secret,
                delivery_id=str(delivery.delivery_id),
                timestamp=timestamp,
                body=body,
            ),
        }
        try:
            result = post_pinned(
                endpoint.url, body=body, headers=headers, timeout=settings.EASEL_WEBHOOK_TIMEOUT
            )
        except UnsafeUrlError as exc:
            error = f"Refused: {exc}"
        except (OSError, http.client.HTTPException, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        else:
            status_code = result.status_code
            ok = 200 <= status_code < 300
            error = "" if ok else f"HTTP {status_code}: {result.body_excerpt[:300]}".strip()
    duration_ms = int((time.monotonic() - started) * 1000)
    _attempt_record(
        delivery=delivery,
        status_code=status_code,
        error=error,
        duration_ms=duration_ms,
        give_up=not endpoint.active,
    )
    logger.info(
        "webhook %s attempt %d to %s: %s in %d ms",
        delivery.delivery_id,
        delivery.attempts,
        endpoint.url,
        status_code or error,
        duration_ms,
    )
    return delivery


@transaction.atomic
def _attempt_record(
    *,
    delivery: WebhookDelivery,
    status_code: int | None,
    error: str,
    duration_ms: int,
    give_up: bool,
) -> None:
    now = timezone.now()
    WebhookDeliveryAttempt.objects.create(
        delivery=delivery,
        number=delivery.attempts,
        at=now,
        duration_ms=duration_ms,
        status_code=status_code,
        error=error,
    )
    delivery.last_status_code = status_code
    delivery.last_error = error
    if not error:
        delivery.status = Status.SUCCEEDED
        delivery.delivered_at = now
        delivery.next_attempt_at = None
    elif give_up or delivery.attempts >= settings.EASEL_WEBHOOK_MAX_ATTEMPTS:
        delivery.status = Status.FAILED
        delivery.next_attempt_at = None
    else:
        delivery.next_attempt_at = now + webhook_retry_delay(delivery.attempts)
    fields = ["last_status_code", "last_error", "status", "delivered_at", "next_attempt_at"]
    delivery.save(update_fields=fields)
