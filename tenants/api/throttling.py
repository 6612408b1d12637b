"""Rate limits per API key (or signed-in person) and per organization, on top of the quotas.

Quotas (``tenants.quotas``) bound how much work an organization may have done in a day or month;
these bound how fast it may ask. DRF's throttles keep each principal's recent request times in the
cache (Redis in production, so every web process counts together) and answer 429 with
``Retry-After`` in the API's error format; ``PlatformRateThrottle`` checks all three limits in two
round trips to the cache. Rates are read from settings at request time
(``EASEL_RATE_LIMIT_*``, DRF's ``N/s|m|h|d``); an empty rate turns a limit off.

``Prefer: wait`` also takes one of the organization's waiting slots (``waiting_slot``), so a few
clients holding requests open can never occupy every web worker: without a free slot the create
answers at once with 202, as a server may ignore a preference (RFC 7240).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

if TYPE_CHECKING:  # rest_framework.views imports this module through its settings
    from rest_framework.request import Request
    from rest_framework.views import APIView

# A slot counter whose holder died is forgotten after this long (longer than the longest wait).
WAITING_SLOT_TTL_SECONDS = 120


class _SettingsRateThrottle(SimpleRateThrottle):
    setting = ""

    def get_rate(self) -> str | None:
        return getattr(settings, self.setting, None) or None

    def allow_request(self, request: Request, view: APIView) -> bool:
        # Re-read the rate each time: settings may change (tests) and DRF reads it in __init__.
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def principal_of(self, request: Request) -> Any:
        return getattr(request, "principal", None)


class PrincipalRateThrottle(_SettingsRateThrottle):
    """Every request of one API key (or one person)."""

    scope = "principal"
    setting = "EASEL_RATE_LIMIT_PER_KEY"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        principal = self.principal_of(request)
        if principal is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": _ident(principal)}


class CreateRateThrottle(PrincipalRateThrottle):
    """Requests that change something (POST, PUT, PATCH, DELETE) of one API key (or person)."""

    scope = "writes"
    setting = "EASEL_RATE_LIMIT_WRITES_PER_KEY"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return None
        return super().get_cache_key(request, view)


class OrganizationRateThrottle(_SettingsRateThrottle):
    """Every request of one organization, whichever key or person sends it."""

    scope = "organization"
    setting = "EASEL_RATE_LIMIT_PER_ORG"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        principal = self.principal_of(request)
        if principal is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": principal.org.pk}


class PlatformRateThrottle(BaseThrottle):
    """The three limits above, in one pass over the cache: one ``get_many`` for their histories
    and one ``set_many`` for those the request is counted in, where the three throttles would
    make a read and a write each (six round trips to Redis a request, now two). Each limit keeps
    DRF's sliding-window log and counts exactly as its own throttle would, a refused request
    included (DRF's ``check_throttles`` asks every throttle: the limits that allow it count it)."""

    limits: tuple[type[_SettingsRateThrottle], ...] = (
        PrincipalRateThrottle,
        CreateRateThrottle,
        OrganizationRateThrottle,
    )

    def allow_request(self, request: Request, view: APIView) -> bool:
        checks = []
        for kind in self.limits:
            limit = kind()
            limit.rate = limit.get_rate()
            if limit.rate is None:
                continue
            limit.num_requests, limit.duration = limit.parse_rate(limit.rate)
            limit.key = limit.get_cache_key(request, view)
            if limit.key is not None:
                checks.append(limit)
        if not checks:
            return True
        histories = cache.get_many([limit.key for limit in checks])
        now = checks[0].timer()
        counted: dict[int, dict[str, list[float]]] = {}  # timeout → key → history
        self.refused = []
        for limit in checks:
            limit.now = now
            limit.history = [t for t in histories.get(limit.key, []) if t > now - limit.duration]
            if len(limit.history) >= limit.num_requests:
                self.refused.append(limit)
                continue
            limit.history.insert(0, now)
            counted.setdefault(limit.duration, {})[limit.key] = limit.history
        for timeout, rows in counted.items():
            cache.set_many(rows, timeout)
        return not self.refused

    def wait(self) -> float | None:
        waits = [w for w in (limit.wait() for limit in self.refused) if w is not None]
        return max(waits, default=None)


def _ident(principal: Any) -> str:
    if principal.api_key is not None:
        return f"key-{principal.api_key.pk}"
    return f"user-{getattr(principal.user, 'pk', '')}"


@contextlib.contextmanager
def waiting_slot(*, org_id: int) -> Iterator[bool]:
    """Take one of the organization's ``EASEL_MAX_WAITERS_PER_ORG`` waiting slots; yields whether
    one was free (the caller waits only then)."""
    limit = int(settings.EASEL_MAX_WAITERS_PER_ORG)
    key = f"easel:waiters:{org_id}"
    cache.add(key, 0, WAITING_SLOT_TTL_SECONDS)
    try:
        held = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, WAITING_SLOT_TTL_SECONDS)
        held = 1
    cache.touch(key, WAITING_SLOT_TTL_SECONDS)
    try:
        yield held <= limit
    finally:
        with contextlib.suppress(ValueError):
            cache.decr(key)
