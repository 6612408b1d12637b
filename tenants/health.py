"""Health endpoints: ``/healthz`` for liveness, ``/readyz`` for operators.

``/healthz`` is public and says only that the process answers: a load balancer or a liveness
probe needs no more, and a failing check's text (hosts, users, buckets) must never reach the
internet. ``/readyz`` runs the checks (database, broker, object storage) for a staff session or
``Authorization: Bearer <EASEL_READINESS_TOKEN>``: token callers (probes, monitors) get each
check's ok/ms and its error's class name, staff also the error message.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _broker() -> None:
    from kombu import Connection

    with Connection(
        settings.CELERY_BROKER_URL,
        transport_options=getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}),
        connect_timeout=2,
    ) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def _storage() -> None:
    default_storage.exists("healthz-probe")


CHECKS: dict[str, Callable[[], None]] = {
    "database": _database,
    "broker": _broker,
    "storage": _storage,
}


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process is up and answering. Checks nothing, so it reveals nothing."""
    return JsonResponse({"status": "ok"})


def is_staff(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)


def bearer_token_matches(request: HttpRequest, expected: str) -> bool:
    """The request carries ``Authorization: Bearer <expected>`` (an operator's token)."""
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if not expected or scheme.lower() != "bearer" or not presented.strip():
        return False
    return hmac.compare_digest(presented.strip().encode(), expected.encode())


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness for operators: 200 when every check passes, else 503 naming the failing ones."""
    staff = is_staff(request)
    if not staff and not bearer_token_matches(request, settings.EASEL_READINESS_TOKEN):
        message = (
            "Readiness details are for operators: sign in as staff or send "
            "'Authorization: Bearer <EASEL_READINESS_TOKEN>'. /healthz answers anyone."
        )
        return JsonResponse(
            {"error": {"code": "permission_denied", "message": message, "fields": {}}},
            status=403,
        )
    results: dict[str, dict[str, object]] = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
            results[name] = {"ok": True}
        except Exception as exc:  # noqa: BLE001 - a health check reports every failure
            results[name] = {"ok": False, "error": type(exc).__name__}
            if staff:  # the text may name hosts, users and buckets
                results[name]["message"] = str(exc)[:300]
        results[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    ok = all(r["ok"] for r in results.values())
    return JsonResponse(
        {"status": "ok" if ok else "degraded", "checks": results}, status=200 if ok else 503
    )
