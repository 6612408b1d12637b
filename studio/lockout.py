"""Sign-in lockout: after ``MAX_FAILURES`` failed attempts for one username from one address
within ``WINDOW``, that pair is refused until the window has passed.

The rule is the same whether or not the username exists, so the lockout never tells a visitor
which accounts are real. Counting lives in the database (not a per-process cache) so every web
worker sees the same count.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from .models import LoginFailure

MAX_FAILURES = 5
WINDOW = timedelta(minutes=15)


def _key(username: str) -> str:
    return username.strip().lower()[:150]


def login_locked_until(
    *, username: str, ip: str | None, now: datetime | None = None
) -> datetime | None:
    """When the lockout of ``username`` from ``ip`` ends, or ``None`` if it may try now."""
    now = now or timezone.now()
    recent = list(
        LoginFailure.objects.filter(username=_key(username), ip=ip, at__gt=now - WINDOW)
        .order_by("-at")
        .values_list("at", flat=True)[:MAX_FAILURES]
    )
    if len(recent) < MAX_FAILURES:
        return None
    # The lock lifts when the oldest of the last MAX_FAILURES failures leaves the window.
    return recent[-1] + WINDOW


@transaction.atomic
def login_failure_record(*, username: str, ip: str | None) -> None:
    now = timezone.now()
    LoginFailure.objects.filter(at__lt=now - WINDOW).delete()
    LoginFailure.objects.create(username=_key(username), ip=ip, at=now)


def login_failures_clear(*, username: str, ip: str | None) -> None:
    LoginFailure.objects.filter(username=_key(username), ip=ip).delete()
