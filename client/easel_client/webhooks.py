"""Verify Easel's webhook signatures (Standard Webhooks) in your receiver.

    from easel_client import webhooks

    event = webhooks.verify(secret, request.headers, request.body)   # raises if not genuine
    if event["type"] == "job.succeeded": ...

A delivery carries ``webhook-id`` (the same on every retry: drop duplicates by it),
``webhook-timestamp`` (unix seconds of this attempt) and ``webhook-signature``: one or more
space-separated ``v1,<base64 HMAC-SHA256>`` over ``"<id>.<timestamp>.<body>"``, keyed with the
base64-decoded part of the endpoint's ``whsec_...`` secret. Verify the raw body bytes as
received: a JSON re-encoding changes them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from .errors import WebhookVerificationError

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
DEFAULT_TOLERANCE = 300


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    tolerance: int = DEFAULT_TOLERANCE,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """Check a delivery and return its event (``{"type", "timestamp", "data"}``).

    Raises ``WebhookVerificationError`` when a header is missing, the timestamp is more than
    ``tolerance`` seconds from ``now`` (a replayed old message), or no signature matches (a
    wrong secret or a changed body). ``headers`` may be any mapping; names are matched
    case-insensitively.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    delivery_id = lowered.get("webhook-id", "")
    timestamp = lowered.get("webhook-timestamp", "")
    signatures = lowered.get("webhook-signature", "")
    if not delivery_id or not signatures:
        raise WebhookVerificationError("Missing webhook-id or webhook-signature header.")
    if not timestamp.isdigit():
        raise WebhookVerificationError("Missing or malformed webhook-timestamp header.")
    current = time.time() if now is None else now
    age = current - int(timestamp)
    if abs(age) > tolerance:
        when = "old" if age > 0 else "far in the future"
        raise WebhookVerificationError(
            f"The timestamp is {abs(age):.0f} s {when} (tolerance {tolerance} s)."
        )
    payload = body.encode() if isinstance(body, str) else bytes(body)
    expected = sign(secret, delivery_id=delivery_id, timestamp=int(timestamp), body=payload)
    offered = [s for s in signatures.split() if s.startswith("v1,")]
    if not any(hmac.compare_digest(expected, candidate) for candidate in offered):
        raise WebhookVerificationError("No signature matches: wrong secret, or a changed body.")
    try:
        return json.loads(payload)
    except ValueError as exc:
        raise WebhookVerificationError(f"The body is not JSON: {exc}") from exc


def is_valid(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    tolerance: int = DEFAULT_TOLERANCE,
    *,
    now: float | None = None,
) -> bool:
    """``verify`` as a yes or no."""
    try:
        verify(secret, headers, body, tolerance, now=now)
    except WebhookVerificationError:
        return False
    return True


def sign(secret: str, *, delivery_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value Easel sends for this message (for tests of receivers)."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        # Easel makes base64 secrets; a hand-made one is used as its bytes, as the server does.
        return raw.encode()
