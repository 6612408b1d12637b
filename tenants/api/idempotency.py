"""``Idempotency-Key`` on API creates: the HTTP side of ``tenants.idempotency``.

What is saved: 2xx and 5xx responses (a 5xx is replayed, as Stripe does: the outcome of that
attempt is unknown to the client, so it must not silently run twice; retry with a new key), in the
same transaction as what the handler wrote. What is not: 4xx responses (validation errors, 403,
404, 409, 429): the handler's writes are rolled back and the key is released, so the client may fix
the request, or wait out a limit, and retry with the same key. A replay carries
``Idempotent-Replayed: true``.

Use ``@idempotent`` on a DRF view method, or ``with_idempotency(request, handler)`` in a view,
after authentication and permissions.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from rest_framework import status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from ..idempotency import (
    idempotency_claim,
    idempotency_complete,
    idempotency_release,
    idempotency_scope,
)
from ..models import IdempotencyRecord
from .errors import error_body

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# Response headers worth replaying; the rest (Content-Type, Vary, ...) are rebuilt by rendering.
SAVED_HEADERS = ("Location", "Content-Location", "Retry-After")
KEY_PATTERN = re.compile(r"[\x20-\x7e]{1,255}")


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


def _replay(record: IdempotencyRecord) -> Response:
    headers = dict(record.response_headers or {})
    headers[REPLAYED_HEADER] = "true"
    return Response(record.response_body, status=record.status_code, headers=headers)


def _run(handler: Callable[[], Any], request: Request, view: Any) -> Response:
    """Run the handler in a savepoint and turn an exception into the response DRF would send (or
    a JSON 500); the savepoint drops whatever a failing handler half-wrote."""
    try:
        with transaction.atomic():
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
        return Response(
            error_body(
                "server_error",
                "The server failed while handling this request. This response is saved under "
                "your Idempotency-Key; check whether the resource exists, then retry with a new "
                "key.",
            ),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )


def with_idempotency(request: Request, handler: Callable[[], Any], *, view: Any = None) -> Any:
    """Run ``handler`` (a view returning a DRF ``Response``) under the request's Idempotency-Key."""
    key = request.headers.get(HEADER)
    if key is None:
        return handler()
    if not KEY_PATTERN.fullmatch(key):
        return Response(
            error_body(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1-255 printable ASCII characters (a UUID is a good "
                "choice).",
            ),
            status=status.HTTP_400_BAD_REQUEST,
        )
    principal = request.principal
    record = idempotency_claim(
        org=principal.org,
        scope=idempotency_scope(principal),
        key=key,
        method=request.method,
        path=request.path,
        fingerprint=request_fingerprint(request),
    )
    if record.state == IdempotencyRecord.State.DONE:
        return _replay(record)
    with transaction.atomic():
        response = _run(handler, request, view)
        if not isinstance(response, Response) or 400 <= response.status_code < 500:
            # Nothing happened; the key may be used again. A non-DRF response cannot be saved.
            transaction.set_rollback(True)
        else:
            body = (
                json.loads(JSONRenderer().render(response.data))
                if response.data is not None
                else None
            )
            headers = {name: response[name] for name in SAVED_HEADERS if response.has_header(name)}
            idempotency_complete(
                record=record, status_code=response.status_code, body=body, headers=headers
            )
            return response
    idempotency_release(record=record)
    return response


def idempotent(method: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a DRF view method (``create``, ``post``...) to honour ``Idempotency-Key``."""

    @functools.wraps(method)
    def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Any:
        return with_idempotency(request, lambda: method(view, request, *args, **kwargs), view=view)

    return wrapper
