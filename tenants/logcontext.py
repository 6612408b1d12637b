"""What a log line is about: the request id, the organization and the job id, kept in context
variables and stamped on every record by ``ContextFilter`` (the settings' console handler uses
it), so that ``EASEL_LOG_FORMAT=json`` lines can be searched by any of them.

The web sets them per request (``RequestContextMiddleware``; the organization once the request's
principal is known, in ``tenants.context``); a worker sets the job id when a task starts
(config/celery_app.py) and again for each batch it claims. Each request or task sets all three
afresh, so one never inherits the last one's organization. Importing this module imports no model:
``logging.config`` loads it before the apps are ready.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse

FIELDS = ("request_id", "organization", "job_id")
_values: dict[str, ContextVar[str]] = {
    name: ContextVar(f"easel_{name}", default="") for name in FIELDS
}
# A caller's X-Request-ID is kept when it looks like an id (a proxy's or a client's), else replaced.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")


def log_context_bind(**values: object) -> None:
    """Set some of ``request_id``, ``organization``, ``job_id`` for what this context logs next."""
    for name, value in values.items():
        _values[name].set("" if value is None else str(value))


def log_context() -> dict[str, str]:
    return {name: var.get() for name, var in _values.items()}


class ContextFilter(logging.Filter):
    """Adds the context's fields to every record (empty strings when unset)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _values.items():
            if not hasattr(record, name):
                setattr(record, name, var.get())
        return True


class RequestContextMiddleware:
    """Gives each request an id (the caller's ``X-Request-ID`` when it is a plausible one),
    echoed in the response, and clears the organization and job of the previous request.

    The values are not reset when the response leaves: Django's own request log line
    (``django.request``, 4xx/5xx) is written after the middleware chain returns and should carry
    them; the next request overwrites them.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        offered = request.headers.get("X-Request-ID", "")
        request_id = offered if _REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
        log_context_bind(request_id=request_id, organization="", job_id="")
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response
