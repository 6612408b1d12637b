"""Domain errors (HackSoft's ``ApplicationError``): what services raise when a request cannot be
done, with a stable ``code`` a client can branch on and a message a person can act on.

Services know nothing of HTTP. The API's one exception handler (``tenants.api.errors``) maps each
class to a status code; the studio shows ``message``; the worker stores ``code`` and ``message`` on
the job. Django's own ``ValidationError`` (400, keyed by field), ``PermissionDenied`` (403) and
``Http404`` stay what they are: they are domain errors already.
"""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A request the domain refuses. The API answers 400 unless a subclass says otherwise."""

    code = "invalid"

    def __init__(
        self, message: str, *, code: str | None = None, fields: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.fields = fields or {}


class Conflict(ApplicationError):
    """The request conflicts with the object's current state (API: 409)."""

    code = "conflict"


class LimitExceeded(ApplicationError):
    """A quota or rate limit would be passed; ``retry_after`` seconds until it may pass (API: 429
    with ``Retry-After``)."""

    code = "limit_exceeded"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(1, int(retry_after))


class TooLarge(ApplicationError):
    """An upload is larger than the platform accepts (API: 413)."""

    code = "payload_too_large"


class PeerUnavailable(ApplicationError):
    """A service the request depends on (an LLM endpoint, a hosted model) failed (API: 502)."""

    code = "peer_unavailable"
