"""One error format for every 4xx (and a 503 when the database is away):
``{"error": {"code", "message", "fields"}}``.

The one place where errors become HTTP: DRF's own exceptions, Django's ``ValidationError``,
``PermissionDenied`` and ``Http404``, and the domain's ``ApplicationError`` family
(``tenants.errors``), whose class decides the status code below.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ..errors import ApplicationError, Conflict, LimitExceeded, PeerUnavailable, TooLarge

# Most specific first: the first class an error is an instance of gives its status.
STATUS_FOR_ERROR: tuple[tuple[type[ApplicationError], int], ...] = (
    (LimitExceeded, status.HTTP_429_TOO_MANY_REQUESTS),
    (Conflict, status.HTTP_409_CONFLICT),
    (PeerUnavailable, status.HTTP_502_BAD_GATEWAY),
    (TooLarge, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE),
    (ApplicationError, status.HTTP_400_BAD_REQUEST),
)


def application_error_response(exc: ApplicationError) -> Response:
    status_code = next(code for cls, code in STATUS_FOR_ERROR if isinstance(exc, cls))
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, LimitExceeded) else None
    return Response(
        error_body(exc.code, exc.message, exc.fields), status=status_code, headers=headers
    )


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"
    default_detail = "Request body too large."


def error_body(code: str, message: str, fields: dict | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def _flatten(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {k: _flatten(v) for k, v in detail.items()}
    if isinstance(detail, list):
        flat = [_flatten(v) for v in detail]
        return flat[0] if len(flat) == 1 and isinstance(flat[0], str) else flat
    return str(detail)


def _first_message(fields: dict[str, Any]) -> str:
    for name, value in fields.items():
        while isinstance(value, list | dict) and value:
            value = value[0] if isinstance(value, list) else next(iter(value.values()))
        label = "" if name in ("non_field_errors", "__all__") else f"{name}: "
        return f"{label}{value}"
    return "Invalid request."


DATABASE_AWAY = (
    "The database is unreachable right now, so nothing was saved. Retry in a few seconds (with "
    "the same Idempotency-Key, a retry can never act twice)."
)
DATABASE_RETRY_AFTER = 5


def database_away_body() -> dict[str, Any]:
    return error_body("service_unavailable", DATABASE_AWAY)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        return application_error_response(exc)
    if isinstance(exc, OperationalError | InterfaceError):
        # The connection is gone (or never came): the transaction rolled back with it.
        return Response(
            database_away_body(),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
        )
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        exc = PayloadTooLarge(f"Request body is larger than {limit} bytes.")
    elif isinstance(exc, DjangoValidationError):
        detail = (
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        fields = _flatten(detail)
        response.data = error_body("invalid", _first_message(fields), fields)
    elif isinstance(exc, exceptions.APIException):
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        response.data = error_body(str(code), str(_flatten(exc.detail)))
    return response
