"""The API's answers where no view answered: a JSON 404 for an ``/api/`` path that names no
endpoint, in every configuration, and a JSON 500 for an unhandled error under ``/api/``.

Django's ``handler404`` is not enough for the first: with DEBUG on (``make run``) Django shows its
HTML technical page instead, so a catch-all route at the end of the API's URL map answers."""

from __future__ import annotations

import sys

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from django.views.defaults import server_error

from .errors import error_body


@csrf_exempt  # it changes nothing, and an unknown path must be a 404 whatever the method
def api_not_found(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    if _slash_would_match(request):
        # What CommonMiddleware's APPEND_SLASH would have done had this route not matched.
        return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
    message = (
        f"No API endpoint at {request.path}. The API lives under /api/v1/; "
        "its operations are listed at /api/docs/."
    )
    return JsonResponse(error_body("not_found", message), status=404)


def _slash_would_match(request: HttpRequest) -> bool:
    if not settings.APPEND_SLASH or request.path_info.endswith("/"):
        return False
    if request.method not in ("GET", "HEAD"):
        return False
    try:
        match = resolve(request.path_info + "/")
    except Resolver404:
        return False
    return match.func is not api_not_found


def api_server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: the error format for API clients, Django's page for everyone else; a 503
    with ``Retry-After`` when the database is away (an error before any view ran, e.g. loading
    the session; DRF's views answer that themselves)."""
    from django.db import InterfaceError, OperationalError

    from .errors import DATABASE_AWAY, DATABASE_RETRY_AFTER, database_away_body

    if isinstance(sys.exc_info()[1], OperationalError | InterfaceError):
        if request.path.startswith("/api/"):
            response: HttpResponse = JsonResponse(database_away_body(), status=503)
        else:
            response = HttpResponse(DATABASE_AWAY, status=503, content_type="text/plain")
        response["Retry-After"] = str(DATABASE_RETRY_AFTER)
        return response
    if not request.path.startswith("/api/"):
        return server_error(request)
    message = (
        "The server failed while handling this request; nothing you sent was wrong. Retry later; "
        "if it keeps failing, report the time and path to your administrator."
    )
    return JsonResponse(error_body("server_error", message), status=500)
