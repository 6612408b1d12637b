"""Sign-in lockout for the studio and the Django admin, counted over a sliding ``WINDOW``:

- ``MAX_FAILURES`` failed attempts for one username from one address lock that pair (guessing
  one person's password);
- ``MAX_ADDRESS_FAILURES`` failed attempts from one address, whatever the usernames, lock that
  address (spraying a common password across many accounts).

A lock lifts when the oldest counted failure leaves the window. The rules are the same whether or
not a username exists, so the lockout never tells a visitor which accounts are real. Counting
lives in the database (not a per-process cache) so every web worker sees the same count; a
successful sign-in clears only its own username's failures from that address, so one valid
account cannot reset an address's spraying count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from .models import LoginFailure

MAX_FAILURES = 5
MAX_ADDRESS_FAILURES = 20
WINDOW = timedelta(minutes=15)


@dataclass(frozen=True)
class Lockout:
    until: datetime
    by_address: bool  # True: the address is locked for every username, not one pair

    def message(self, *, now: datetime | None = None) -> str:
        seconds = (self.until - (now or timezone.now())).total_seconds()
        minutes = max(1, math.ceil(seconds / 60))
        wait = f"Try again in {minutes} minute{'s' if minutes != 1 else ''}"
        if self.by_address:
            return f"Too many failed sign-ins from your address. {wait}."
        return (
            f"Too many failed sign-ins for this username from your address. {wait}, "
            "or ask an administrator to reset your password."
        )


def client_address(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def _key(username: str) -> str:
    return username.strip().lower()[:150]


def _lifts_at(failures: QuerySet[LoginFailure], *, limit: int, now: datetime) -> datetime | None:
    recent = list(
        failures.filter(at__gt=now - WINDOW).order_by("-at").values_list("at", flat=True)[:limit]
    )
    if len(recent) < limit:
        return None
    # The lock lifts when the oldest of the last ``limit`` failures leaves the window.
    return recent[-1] + WINDOW


def login_lockout(*, username: str, ip: str | None, now: datetime | None = None) -> Lockout | None:
    """The lockout that applies to ``username`` from ``ip`` now, or ``None`` if it may try."""
    now = now or timezone.now()
    from_address = LoginFailure.objects.filter(ip=ip)
    address_until = _lifts_at(from_address, limit=MAX_ADDRESS_FAILURES, now=now)
    pair_until = _lifts_at(
        from_address.filter(username=_key(username)), limit=MAX_FAILURES, now=now
    )
    if address_until is not None and (pair_until is None or address_until >= pair_until):
        return Lockout(until=address_until, by_address=True)
    if pair_until is not None:
        return Lockout(until=pair_until, by_address=False)
    return None


def login_locked_until(
    *, username: str, ip: str | None, now: datetime | None = None
) -> datetime | None:
    """When the lockout of ``username`` from ``ip`` ends, or ``None`` if it may try now."""
    lockout = login_lockout(username=username, ip=ip, now=now)
    return lockout.until if lockout else None


@transaction.atomic
def login_failure_record(*, username: str, ip: str | None) -> None:
    now = timezone.now()
    LoginFailure.objects.filter(at__lt=now - WINDOW).delete()
    LoginFailure.objects.create(username=_key(username), ip=ip, at=now)


def login_failures_clear(*, username: str, ip: str | None) -> None:
    LoginFailure.objects.filter(username=_key(username), ip=ip).delete()
