"""Idempotency keys for creates, with Stripe's semantics.

A client sends ``Idempotency-Key: <1-255 printable ASCII characters>`` with a create. The first
request with a key inserts an ``in_progress`` row (the unique constraint on (organization, key)
is the lock, so two concurrent requests can never both run the handler), runs the view and saves
its response. Afterwards, within ``EASEL_IDEMPOTENCY_TTL_HOURS``:

- same key, same method, path and body → the saved response is replayed (status, body,
  ``Location``) with ``Idempotent-Replayed: true``; nothing runs again;
- same key, another body or path → 409 ``idempotency_key_reused``;
- same key while the first request still runs → 409 ``idempotency_in_progress``.

What is saved: 2xx and 5xx responses (a 5xx is replayed, as Stripe does: the outcome of that
attempt is unknown to the client, so it must not silently run twice; retry with a new key).
What is not: 4xx responses (validation errors, 403, 404, 409, 429 quota): the lock row is
deleted, so the client may fix the request, or wait out a quota, and retry with the same key.
A process killed mid-request leaves its row ``in_progress`` until the purge removes it.

Use ``@idempotent`` on a DRF view method, or ``with_idempotency(request, handler)`` in a view.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from .api.errors import error_body
from .models import IdempotencyRecord, Organization

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# Response headers worth replaying; the rest (Content-Type, Vary, ...) are rebuilt by rendering.
SAVED_HEADERS = ("Location", "Content-Location", "Retry-After")
KEY_PATTERN = re.compile(r"[\x20-\x7e]{1,255}")


def idempotency_ttl() -> timedelta:
    return timedelta(hours=settings.EASEL_IDEMPOTENCY_TTL_HOURS)


def request_fingerprint(request: Request) -> str:
    """SHA-256 of the canonical JSON of the parsed body (key order and whitespace do not count;
    uploaded files count by name, size and content)."""
    data = request.data
    if hasattr(data, "lists"):  # QueryDict from a form or multipart body
        data = dict(data.lists())
    canonical = json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_canonical_value
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _canonical_value(value: Any) -> str:
    if isinstance(value, UploadedFile):
        digest = hashlib.sha256()
        for chunk in value.chunks():
            digest.update(chunk)
        value.seek(0)
        return f"file:{value.name}:{value.size}:{digest.hexdigest()}"
    return str(value)


def _error(status_code: int, code: str, message: str) -> Response:
    return Response(error_body(code, message), status=status_code)


def _replay(record: IdempotencyRecord) -> Response:
    headers = dict(record.response_headers or {})
    headers[REPLAYED_HEADER] = "true"
    return Response(record.response_body, status=record.status_code, headers=headers)


def _claim(
    *, org: Organization, key: str, method: str, path: str, fingerprint: str
) -> IdempotencyRecord | Response:
    """Insert the in_progress row (we run the handler) or answer from the existing one."""
    for _ in range(2):
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    organization=org,
                    key=key,
                    method=method,
                    path=path,
                    request_fingerprint=fingerprint,
                )
            return record
        except IntegrityError:
            existing = IdempotencyRecord.objects.filter(organization=org, key=key).first()
        if existing is None:  # deleted meanwhile (a 4xx released it): try the insert again
            continue
        if existing.created_at < timezone.now() - idempotency_ttl():
            # Expired but not purged yet: the key is free again.
            IdempotencyRecord.objects.filter(
                pk=existing.pk, created_at=existing.created_at
            ).delete()
            continue
        if existing.method != method or existing.path != path:
            return _error(
                status.HTTP_409_CONFLICT,
                "idempotency_key_reused",
                f"This Idempotency-Key was already used for {existing.method} {existing.path}; "
                f"use a new key for {method} {path}.",
            )
        if existing.request_fingerprint != fingerprint:
            return _error(
                status.HTTP_409_CONFLICT,
                "idempotency_key_reused",
                "This Idempotency-Key was already used with a different request body; "
                "send the same body to get the first response again, or use a new key.",
            )
        if existing.state == IdempotencyRecord.State.IN_PROGRESS:
            return _error(
                status.HTTP_409_CONFLICT,
                "idempotency_in_progress",
                "A request with this Idempotency-Key is still being processed; retry in a few "
                "seconds to get its response.",
            )
        return _replay(existing)
    return _error(
        status.HTTP_409_CONFLICT,
        "idempotency_in_progress",
        "Another request with this Idempotency-Key is changing state; retry in a few seconds.",
    )


def _run(handler: Callable[[], Any], request: Request, view: Any) -> Response:
    """Run the handler and turn an exception into the response DRF would send (or a JSON 500)."""
    try:
        return handler()
    except Exception as exc:
        context = {
            "view": view,
            "args": getattr(view, "args", ()),
            "kwargs": getattr(view, "kwargs", {}),
            "request": request,
        }
        response = api_settings.EXCEPTION_HANDLER(exc, context)
        if response is not None:
            return response
        logger.exception("Unhandled error under an Idempotency-Key; the 500 is saved for replay")
        return _error(
            status.HTTP_500_INTERNAL_SERVER_ERROR,
            "server_error",
            "The server failed while handling this request. This response is saved under your "
            "Idempotency-Key; check whether the resource exists, then retry with a new key.",
        )


def with_idempotency(request: Request, handler: Callable[[], Any], *, view: Any = None) -> Any:
    """Run ``handler`` (returning a DRF ``Response``) under the request's Idempotency-Key, if any.

    Call it after authentication and permissions (inside the view method): the key's scope is
    the requesting principal's organization.
    """
    key = request.headers.get(HEADER)
    if key is None:
        return handler()
    if not KEY_PATTERN.fullmatch(key):
        return _error(
            status.HTTP_400_BAD_REQUEST,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1-255 printable ASCII characters (a UUID is a good choice).",
        )
    org = request.principal.org
    record = _claim(
        org=org,
        key=key,
        method=request.method,
        path=request.path,
        fingerprint=request_fingerprint(request),
    )
    if isinstance(record, Response):
        return record  # a replay or a conflict
    response = _run(handler, request, view)
    if not isinstance(response, Response) or 400 <= response.status_code < 500:
        # 4xx: nothing happened, the key may be used again. A non-DRF response cannot be saved.
        IdempotencyRecord.objects.filter(pk=record.pk).delete()
        return response
    body = json.loads(JSONRenderer().render(response.data)) if response.data is not None else None
    headers = {name: response[name] for name in SAVED_HEADERS if response.has_header(name)}
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        state=IdempotencyRecord.State.DONE,
        status_code=response.status_code,
        response_body=body,
        response_headers=headers,
        completed_at=timezone.now(),
    )
    return response


def idempotent(method: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a DRF view method (``create``, ``post``...) to honour ``Idempotency-Key``."""

    @functools.wraps(method)
    def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Any:
        return with_idempotency(request, lambda: method(view, request, *args, **kwargs), view=view)

    return wrapper


def idempotency_records_purge(*, older_than: timedelta | None = None) -> int:
    """Delete keys older than the TTL (``EASEL_IDEMPOTENCY_TTL_HOURS``); returns how many."""
    cutoff = timezone.now() - (older_than if older_than is not None else idempotency_ttl())
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
