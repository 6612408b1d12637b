"""Polling until a job, training or run finishes, with a deadline and a progress callback."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from .errors import JobFailed, WaitTimeout

T = TypeVar("T")


class Job(Protocol):
    id: str
    status: str
    error: dict[str, str] | None

    @property
    def finished(self) -> bool: ...

    @property
    def succeeded(self) -> bool: ...


J = TypeVar("J", bound=Job)

FIRST_INTERVAL = 0.25
MAX_INTERVAL = 2.0


def poll(
    fetch: Callable[[], T],
    *,
    done: Callable[[T], bool],
    timeout: float | None,
    sleep: Callable[[float], None],
    on_progress: Callable[[T], None] | None = None,
    what: str,
) -> T:
    """Call ``fetch`` until ``done`` holds for its result; ``WaitTimeout`` after ``timeout``
    seconds (None: no limit). The interval starts short (a tiny job takes seconds) and grows to
    ``MAX_INTERVAL`` so that a long one costs few requests."""
    deadline = None if timeout is None else time.monotonic() + timeout
    interval = FIRST_INTERVAL
    while True:
        current = fetch()
        if on_progress is not None:
            on_progress(current)
        if done(current):
            return current
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(f"{what} did not finish within {timeout:g} s.", last=current)
            interval = min(interval, left)
        sleep(interval)
        interval = min(interval * 1.5, MAX_INTERVAL)


def wait_for_job(
    fetch: Callable[[], J],
    *,
    timeout: float | None,
    sleep: Callable[[float], None],
    on_progress: Callable[[J], None] | None,
    raise_on_failure: bool,
    what: str,
) -> J:
    """``poll`` until a generation or training finishes; with ``raise_on_failure``, one that did
    not succeed raises ``JobFailed`` with the server's reason."""
    job = poll(
        fetch,
        done=lambda j: j.finished,
        timeout=timeout,
        sleep=sleep,
        on_progress=on_progress,
        what=what,
    )
    if raise_on_failure and not job.succeeded:
        reason = (job.error or {}).get("message") or job.status
        raise JobFailed(f"{what} {job.status}: {reason}", resource=job)
    return job
