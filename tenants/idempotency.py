"""Idempotency keys for creates, with Stripe's semantics (HTTP glue: ``tenants.api.idempotency``).

A key belongs to one principal: the API key that sent it, or the signed-in person. Two teams (or
two keys of one team) using the same key string never see each other's responses.

Lifecycle of a key:

1. ``idempotency_claim`` inserts an ``in_progress`` row in its own short transaction. The unique
   constraint on (organization, scope, key) is the lock: a second request with the key while the
   first runs sees the row and is refused with 409 ``idempotency_in_progress``.
2. The handler runs, and ``idempotency_complete`` saves its response, **in one transaction** with
   everything the handler wrote (the job, its quota reservation, its audit event). Either both are
   committed or neither is.
3. So a process that dies mid-request leaves an ``in_progress`` row and nothing else. Once the row
   is older than ``EASEL_IDEMPOTENCY_LOCK_SECONDS`` (far above any create's duration) the key is
   taken over by the next request with it, which runs the handler as if for the first time.

Afterwards, within ``EASEL_IDEMPOTENCY_TTL_HOURS``, the same key with the same method, path and body
replays the saved response; with another body or path it is 409 ``idempotency_key_reused``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from .errors import Conflict
from .models import IdempotencyRecord, Organization
from .principal import Principal

logger = logging.getLogger(__name__)


class IdempotencyConflict(Conflict):
    code = "idempotency_key_reused"


def idempotency_ttl() -> timedelta:
    return timedelta(hours=settings.EASEL_IDEMPOTENCY_TTL_HOURS)


def idempotency_scope(principal: Principal) -> str:
    """Whose keys these are: one API key's, or one person's."""
    if principal.api_key is not None:
        return f"key:{principal.api_key.pk}"
    return f"user:{getattr(principal.user, 'pk', '')}"


def idempotency_claim(
    *, org: Organization, scope: str, key: str, method: str, path: str, fingerprint: str
) -> IdempotencyRecord:
    """The ``in_progress`` row this request now holds, or the finished row to replay (``state``
    ``done``). Raises ``IdempotencyConflict`` for a key used otherwise or still in progress."""
    identity = {"organization": org, "scope": scope, "key": key}
    for _ in range(3):
        try:
            with transaction.atomic():
                return IdempotencyRecord.objects.create(
                    **identity, method=method, path=path, request_fingerprint=fingerprint
                )
        except IntegrityError:
            existing = IdempotencyRecord.objects.filter(**identity).first()
        if existing is None:  # released meanwhile (a 4xx): try the insert again
            continue
        now = timezone.now()
        expired = existing.created_at < now - idempotency_ttl()
        abandoned = existing.state == IdempotencyRecord.State.IN_PROGRESS and (
            existing.created_at < now - timedelta(seconds=settings.EASEL_IDEMPOTENCY_LOCK_SECONDS)
        )
        if expired or abandoned:
            # Expired, or left by a request that died before committing anything: free again.
            IdempotencyRecord.objects.filter(
                pk=existing.pk, created_at=existing.created_at
            ).delete()
            continue
        if existing.method != method or existing.path != path:
            raise IdempotencyConflict(
                f"This Idempotency-Key was already used for {existing.method} {existing.path}; "
                f"use a new key for {method} {path}."
            )
        if existing.request_fingerprint != fingerprint:
            raise IdempotencyConflict(
                "This Idempotency-Key was already used with a different request body; "
                "send the same body to get the first response again, or use a new key."
            )
        if existing.state == IdempotencyRecord.State.IN_PROGRESS:
            raise IdempotencyConflict(
                "A request with this Idempotency-Key is still being processed; retry in a few "
                "seconds to get its response.",
                code="idempotency_in_progress",
            )
        return existing
    raise IdempotencyConflict(
        "Another request with this Idempotency-Key is changing state; retry in a few seconds.",
        code="idempotency_in_progress",
    )


def idempotency_complete(
    *, record: IdempotencyRecord, status_code: int, body: Any, headers: dict[str, str]
) -> None:
    """Save the response. Call it inside the transaction of the handler's own writes."""
    changed = IdempotencyRecord.objects.filter(
        pk=record.pk, state=IdempotencyRecord.State.IN_PROGRESS
    ).update(
        state=IdempotencyRecord.State.DONE,
        status_code=status_code,
        response_body=body,
        response_headers=headers,
        completed_at=timezone.now(),
    )
    if changed != 1:
        # Taken over as abandoned while we ran (we ran longer than the lock): the other request
        # owns the key now, so nothing of ours may commit.
        raise IdempotencyConflict(
            "This request took too long and its Idempotency-Key was taken over by a retry; "
            "fetch the resource the retry created.",
            code="idempotency_in_progress",
        )


def idempotency_release(*, record: IdempotencyRecord) -> None:
    """Free the key: nothing happened (a 4xx), so the client may fix the request and retry."""
    IdempotencyRecord.objects.filter(pk=record.pk).delete()


def idempotency_records_purge(*, older_than: timedelta | None = None) -> int:
    """Delete keys older than the TTL (``EASEL_IDEMPOTENCY_TTL_HOURS``); returns how many."""
    cutoff = timezone.now() - (older_than if older_than is not None else idempotency_ttl())
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
