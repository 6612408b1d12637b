"""Exceptions the client raises: one base class, one subclass per kind of failure.

Every error the API answers carries its body ``{"error": {"code", "message", "fields"}}``; an
``APIError`` keeps all of it, with the HTTP status, so a caller can branch on ``code`` or show
``fields`` next to the inputs they belong to.
"""

from __future__ import annotations

from typing import Any

import httpx


class EaselError(Exception):
    """Base class of everything the client raises."""


class APIConnectionError(EaselError):
    """The server could not be reached (or stopped answering) after every retry."""


class WaitTimeout(EaselError, TimeoutError):
    """A ``wait`` ran out of time; ``last`` is the resource as it was last seen."""

    def __init__(self, message: str, *, last: Any = None) -> None:
        super().__init__(message)
        self.last = last


class JobFailed(EaselError):
    """A job or run finished without succeeding (failed, failed_quality or canceled)."""

    def __init__(self, message: str, *, resource: Any) -> None:
        super().__init__(message)
        self.resource = resource


class WebhookVerificationError(EaselError):
    """A webhook's signature or timestamp did not check out; the message says which."""


class APIError(EaselError):
    """The API answered with an error status."""

    status: int
    code: str
    message: str
    fields: dict[str, Any]

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str,
        fields: dict[str, Any] | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.fields = fields or {}
        self.response = response

    def __str__(self) -> str:
        return f"{self.code}: {self.message} (HTTP {self.status})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "fields": self.fields,
        }


class BadRequest(APIError):
    """400 that is not a validation error (e.g. a malformed Idempotency-Key)."""


class ValidationError(BadRequest):
    """400 with ``code == "invalid"``: ``fields`` names each bad input and why."""


class AuthenticationError(APIError):
    """401: the API key is missing, malformed, revoked or expired."""


class PermissionDenied(APIError):
    """403: the key's role or scopes do not allow this action."""


class NotFound(APIError):
    """404: no such resource in your organization (someone else's looks the same)."""


class Conflict(APIError):
    """409: the resource is not in a state that allows this (e.g. the export is not ready)."""


class PayloadTooLarge(APIError):
    """413: the upload has more bytes or rows than the server accepts."""


class RateLimited(APIError):
    """429: a rate limit or quota; ``retry_after`` is the server's wait in seconds, if given."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx: the server failed. Retried automatically before it reaches you."""


_BY_STATUS: dict[int, type[APIError]] = {
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    429: RateLimited,
}


def error_class_for(status: int, code: str) -> type[APIError]:
    if status == 400:
        return ValidationError if code == "invalid" else BadRequest
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, APIError)
