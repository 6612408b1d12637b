"""Fixtures for the client and CLI tests: a client for the owner against the live server, the
``easel`` command run as a subprocess, and a real Celery worker (the generation end-to-end
test's, on its isolated Redis database)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.test_generation_e2e import (  # noqa: F401 (fixtures)
    isolated_broker,
    receiver,
    start_celery_worker,
    stop_worker,
)

EASEL = Path(sys.executable).parent / "easel"
CLI_SECONDS = 300


@pytest.fixture
def easel(owner, live_server):  # type: ignore[no-untyped-def]
    """The owner's client against the live server."""
    from easel_client import Easel

    with Easel(api_key=owner.api_key, base_url=live_server.url) as client:
        yield client


@pytest.fixture
def run_cli(owner, live_server, tmp_path) -> Callable[..., subprocess.CompletedProcess]:  # type: ignore[no-untyped-def]
    """``run_cli("--json", "usage")``: the installed ``easel`` command with the owner's key in
    ``EASEL_API_KEY`` and the live server in ``EASEL_URL`` (``env=`` adds or overrides; a value
    of None removes). No config file is read unless a test points ``EASEL_CONFIG`` at one."""
    if not EASEL.exists():
        pytest.fail(
            f"{EASEL} is missing: install the client (make test does: pip install -e ./client)"
        )

    def run(*args: str, env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("EASEL_")}
        environment |= {
            "EASEL_API_KEY": owner.api_key,
            "EASEL_URL": live_server.url,
            "EASEL_CONFIG": str(tmp_path / "no-config.toml"),
        }
        for name, value in (env or {}).items():
            if value is None:
                environment.pop(name, None)
            else:
                environment[name] = value
        return subprocess.run(
            [str(EASEL), *args],
            env=environment,
            capture_output=True,
            text=True,
            timeout=CLI_SECONDS,
            check=False,
        )

    return run


@pytest.fixture
def worker(isolated_broker, tmp_path) -> Iterator[subprocess.Popen]:  # type: ignore[no-untyped-def]  # noqa: F811
    """One worker on every queue: generations, catalog runs and exports, trainings, webhooks."""
    process = start_celery_worker(
        broker=isolated_broker,
        tmp_path=tmp_path,
        queues="interactive,bulk,train,default",
        name="client",
        env={"EASEL_WORKER_DRAIN_SECONDS": "0", "OMP_NUM_THREADS": "1"},
    )
    yield process
    stop_worker(process)
