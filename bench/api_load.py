"""The API under concurrent clients, served as production serves it: gunicorn (docker/
gunicorn.conf.py) on production settings, PostgreSQL, Redis as broker and cache (rate limits
counted there), S3 storage; plus the memory of a web worker and of a GPU worker.

    scripts/services.sh up && eval "$(scripts/services.sh env)"
    .venv/bin/python bench/api_load.py [--clients 8,32] [--seconds 10] [--workers N --threads N]

Measured, for each number of concurrent clients: ``POST /api/v1/generations`` (job submission;
no worker runs, so the jobs just queue), ``GET /api/v1/generations/<id>`` of jobs it made and
``GET /api/v1/generations?page_size=20``: requests/s and p50/p95/p99 latency, after a warm-up.
The clients are asyncio tasks in this process, each on its own keep-alive HTTP/1.1 connection,
writing requests and reading responses over raw sockets (an HTTP library would take more of the
two cores than the server's share is worth). They share the work out over ``--orgs``
organizations, one API key each, so the default rate limits (per key, per organization) are
counted but not reached: a platform's load comes from many tenants.

Then: the SQL queries each of those requests makes (one of each, in this process, through
Django's test client), the resident memory (``VmRSS``) of each gunicorn worker after the load
and whether torch is mapped into it (it must not be), and the same for a Celery GPU worker
(``-Q interactive,bulk --pool solo``) after it has made one image with the ``tiny`` model.
The queued jobs of the load are canceled and the broker's queues purged first (also with
``--no-gpu-worker``), so the worker makes just that one and no later worker finds them.

Database: ``DATABASE_URL`` as given (migrated; the organizations ``load-*`` are made once and
reused). Broker and cache: ``CELERY_BROKER_URL`` and ``EASEL_CACHE_URL`` as given. Results go to
stdout. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PREFIX = "load-"
HOST = "127.0.0.1"
BODY = {"prompt": "a red mug on a white table", "model": "tiny", "steps": 4, "seed": 7}
WARM_UP_SECONDS = 2.0


def configure(tmp: Path) -> dict[str, str]:
    """Production settings for the server, the worker and this process (which seeds and counts
    queries); all local state under ``tmp``."""
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "EASEL_CACHE_URL"):
        if not os.environ.get(name):
            raise SystemExit(f'{name} is not set: run `eval "$(scripts/services.sh env)"` first.')
    if not os.environ["DATABASE_URL"].startswith(("postgres://", "postgresql://")):
        raise SystemExit("DATABASE_URL must be PostgreSQL: production runs on it.")
    (tmp / "prometheus").mkdir()
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DJANGO_SECURE_SSL_REDIRECT": "false",  # plain HTTP on 127.0.0.1, no proxy in front
        "DJANGO_ALLOWED_HOSTS": f"{HOST},localhost,testserver",
        "EASEL_PROVENANCE_DEV_CERT": "1",  # the worker signs its image with a development chain
        "EASEL_VAR_DIR": str(tmp / "var"),
        "EASEL_LOG_LEVEL": "WARNING",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prometheus"),  # as compose runs the web
        "HF_HUB_OFFLINE": "1",
    }
    os.environ.update(env)
    return dict(os.environ)


# --- seeding ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tenant:
    slug: str
    api_key: str


def seed(orgs: int) -> list[Tenant]:
    """``orgs`` organizations, each with an owner, a team and a fresh every-scope API key, and the
    ``tiny`` base model (built and uploaded if this database has no usable one)."""
    from django.contrib.auth import get_user_model

    from models_registry.models import BaseModel, BuildStatus
    from tenants import services
    from tenants.models import Organization
    from tenants.principal import Principal
    from tenants.roles import Role

    tiny = BaseModel.objects.filter(name="tiny", status=BuildStatus.READY).first()
    if tiny is None or not tiny.artifact_uri:
        from models_registry.builtin import build_tiny_model

        build_tiny_model()
    tenants = []
    for number in range(orgs):
        slug = f"{PREFIX}{number:02d}"
        org = Organization.objects.filter(slug=slug).first()
        user, _ = get_user_model().objects.get_or_create(username=f"{slug}-owner")
        if org is None:
            org = services.organization_create(name=slug, slug=slug, owner=user)
        owner = Principal(org=org, user=user, role=Role.OWNER)
        team = org.teams.filter(slug="team").first() or services.team_create(
            actor=owner, name="Team", slug="team"
        )
        _key, raw = services.api_key_create(
            actor=owner, team=team, name="load", scopes=sorted(owner.actions)
        )
        tenants.append(Tenant(slug=slug, api_key=raw))
    return tenants


# --- the server ---------------------------------------------------------------------------------


def start_gunicorn(env: dict[str, str], *, port: int, log: Path, args: Any) -> subprocess.Popen:
    server_env = dict(env)
    if args.workers:
        server_env["WEB_CONCURRENCY"] = str(args.workers)
    if args.threads:
        server_env["GUNICORN_THREADS"] = str(args.threads)
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "-c",
        "docker/gunicorn.conf.py",
        "--bind",
        f"{HOST}:{port}",
        "config.wsgi",
    ]
    with log.open("wb") as out:
        server = subprocess.Popen(command, cwd=REPO, env=server_env, stdout=out, stderr=out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=2):  # noqa: S310
                return server
        except OSError:
            if server.poll() is not None:
                raise SystemExit(f"gunicorn exited: see {log}") from None
            time.sleep(0.3)
    raise SystemExit(f"gunicorn did not answer /healthz in 60 s: see {log}")


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def torch_mapped(pid: int) -> bool:
    """Whether torch's libraries are mapped into the process (they are once it is imported)."""
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- the load generator -------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection; ``request`` returns (status, body)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        for attempt in (1, 2):  # the server may have closed an idle connection: reopen once
            if self.writer is None:
                await self._open()
            try:
                return await self._exchange(raw)
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(self, raw: bytes) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def http_request(method: str, path: str, api_key: str, body: bytes = b"") -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {HOST}",
        f"Authorization: Bearer {api_key}",
        "Accept: application/json",
    ]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Result:
    name: str
    clients: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: dict[int, int] = field(default_factory=dict)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    def row(self) -> str:
        done = len(self.latencies)
        errors = ", ".join(f"{code}×{n}" for code, n in sorted(self.errors.items())) or "none"
        return (
            f"| {self.name:<34} | {self.clients:>3} | {done:>6} | {done / self.seconds:>7.1f} | "
            f"{self.percentile(50):>7.1f} | {self.percentile(95):>7.1f} | "
            f"{self.percentile(99):>7.1f} | {errors} |"
        )


async def run_phase(
    name: str,
    *,
    port: int,
    clients: int,
    seconds: float,
    make: Callable[[int], bytes],
    ok: int,
    seen: Callable[[int, bytes], None] | None = None,
) -> Result:
    """``clients`` tasks send ``make(i)`` (i counts each task's requests) back to back for a
    warm-up, then for ``seconds``; the latencies of the second part are the result."""
    result = Result(name=name, clients=clients)
    connections = [Connection(port) for _ in range(clients)]
    measuring = False
    stop_at = time.monotonic() + WARM_UP_SECONDS

    async def client(number: int) -> None:
        count = number * 100_003  # each client its own stretch of the key rotation
        while time.monotonic() < stop_at:
            raw = make(count)
            started = time.perf_counter()
            status, body = await connections[number].request(raw)
            elapsed = time.perf_counter() - started
            if not measuring:
                count += 1
                continue
            if status == ok:
                result.latencies.append(elapsed)
                if seen is not None:
                    seen(count, body)
            else:
                result.errors[status] = result.errors.get(status, 0) + 1
            count += 1

    await asyncio.gather(*(client(n) for n in range(clients)))  # the warm-up
    measuring = True
    started = time.monotonic()
    stop_at = started + seconds
    await asyncio.gather(*(client(n) for n in range(clients)))
    result.seconds = time.monotonic() - started
    for connection in connections:
        connection.close()
    return result


async def load(
    port: int, tenants: list[Tenant], clients: list[int], seconds: float
) -> list[Result]:
    body = json.dumps(BODY).encode()
    results = []
    for c in clients:
        made: list[tuple[int, str]] = []  # (tenant, job id) of the submissions

        def keep(count: int, response: bytes, made: list[tuple[int, str]] = made) -> None:
            if len(made) < 5000:
                made.append((count % len(tenants), json.loads(response)["id"]))

        results.append(
            await run_phase(
                "POST /api/v1/generations",
                port=port,
                clients=c,
                seconds=seconds,
                ok=202,
                seen=keep,
                make=lambda i: http_request(
                    "POST", "/api/v1/generations", tenants[i % len(tenants)].api_key, body
                ),
            )
        )

        if not made:
            raise SystemExit("No submission succeeded; nothing to GET (see the errors above).")

        def one(i: int, made: list[tuple[int, str]] = made) -> bytes:
            tenant, job_id = made[i % len(made)]
            return http_request("GET", f"/api/v1/generations/{job_id}", tenants[tenant].api_key)

        results.append(
            await run_phase(
                "GET /api/v1/generations/<id>",
                port=port,
                clients=c,
                seconds=seconds,
                ok=200,
                make=one,
            )
        )
        results.append(
            await run_phase(
                "GET /api/v1/generations?page_size=20",
                port=port,
                clients=c,
                seconds=seconds,
                ok=200,
                make=lambda i: http_request(
                    "GET", "/api/v1/generations?page_size=20", tenants[i % len(tenants)].api_key
                ),
            )
        )
    return results


# --- queries per request, the GPU worker ---------------------------------------------------------


def queries_per_request(tenant: Tenant) -> dict[str, int]:
    """SQL statements of one request of each kind (BEGIN, COMMIT and savepoints included),
    after one of each so that once-a-minute writes (an API key's last use) are not counted."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Bearer {tenant.api_key}")
    counts = {}
    for _ in (1, 2):
        with CaptureQueriesContext(connection) as captured:
            response = client.post("/api/v1/generations", BODY, content_type="application/json")
        counts["POST /api/v1/generations"] = len(captured.captured_queries)
        job = response.json()["id"]
        for name, path in (
            ("GET /api/v1/generations/<id>", f"/api/v1/generations/{job}"),
            ("GET /api/v1/generations?page_size=20", "/api/v1/generations?page_size=20"),
        ):
            with CaptureQueriesContext(connection) as captured:
                client.get(path)
            counts[name] = len(captured.captured_queries)
    return counts


def cancel_queued_load() -> int:
    """Cancel the load's pending jobs and empty the generation queues, so that a worker started
    now makes only the job it is given."""
    from django.utils import timezone

    from config.celery_app import app
    from generation.models import GenerationJob, JobStatus

    canceled = GenerationJob.objects.filter(
        organization__slug__startswith=PREFIX, status=JobStatus.PENDING
    ).update(status=JobStatus.CANCELED, finished_at=timezone.now())
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for queue in ("interactive", "bulk"):
            try:
                channel.queue_purge(queue)
            except Exception:  # noqa: BLE001, S112 — a queue never declared has nothing in it
                continue
    return canceled


def gpu_worker_memory(env: dict[str, str], *, port: int, tenant: Tenant, log: Path) -> dict:
    """Start a GPU worker, have it make one image, read its memory, stop it."""
    command = [
        str(Path(sys.executable).with_name("celery")),
        "-A",
        "config",
        "worker",
        "-n",
        f"bench-gpu-{os.getpid()}@%h",
        "-Q",
        "interactive,bulk",
        "--pool",
        "solo",
        "--concurrency",
        "1",
        "-l",
        "warning",
    ]
    with log.open("wb") as out:
        worker = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=out)
    try:
        time.sleep(3)
        body = json.dumps(BODY | {"seed": 11}).encode()
        request = urllib.request.Request(  # noqa: S310
            f"http://{HOST}:{port}/api/v1/generations",
            data=body,
            headers={
                "Authorization": f"Bearer {tenant.api_key}",
                "Content-Type": "application/json",
                "Prefer": "wait=60",
            },
        )
        started = time.monotonic()
        with urllib.request.urlopen(request, timeout=90) as response:  # noqa: S310
            job = json.loads(response.read())
        return {
            "status": job["status"],
            "seconds": time.monotonic() - started,
            "rss_mb": rss_mb(worker.pid),
            "torch": torch_mapped(worker.pid),
        }
    finally:
        stop(worker)


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="8,32", help="comma-separated concurrencies")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per phase")
    parser.add_argument("--orgs", type=int, default=16, help="tenants sharing the load")
    parser.add_argument("--workers", type=int, help="gunicorn processes (WEB_CONCURRENCY)")
    parser.add_argument("--threads", type=int, help="threads per process (GUNICORN_THREADS)")
    parser.add_argument("--port", type=int, default=8611)
    parser.add_argument("--no-gpu-worker", action="store_true", help="skip the worker's memory")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    with tempfile.TemporaryDirectory(prefix="easel-api-load-") as folder:
        tmp = Path(folder)
        env = configure(tmp)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        tenants = seed(args.orgs)
        server = start_gunicorn(env, port=args.port, log=tmp / "gunicorn.log", args=args)
        try:
            workers = children(server.pid)
            threads = args.threads or env.get("GUNICORN_THREADS") or 4
            print(
                f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}; "
                f"gunicorn {len(workers)} workers × {threads} threads (gthread), {args.orgs} "
                f"tenants, {args.seconds:g} s per phase after {WARM_UP_SECONDS:g} s warm-up\n"
            )
            results = asyncio.run(load(args.port, tenants, clients, args.seconds))
            print(
                "| request                            |   C |   count |   req/s |  p50 ms |"
                "  p95 ms |  p99 ms | errors |"
            )
            print("|---|---|---|---|---|---|---|---|")
            for result in results:
                print(result.row())
            print("\nSQL queries per request (BEGIN/COMMIT/savepoints included):")
            for name, count in queries_per_request(tenants[0]).items():
                print(f"  {name:<38} {count}")
            print("\nMemory after the load (VmRSS):")
            for pid in workers:
                mapped = "torch mapped" if torch_mapped(pid) else "no torch"
                print(f"  gunicorn worker {pid}: {rss_mb(pid):6.1f} MB  ({mapped})")
            canceled = cancel_queued_load()
            if not args.no_gpu_worker:
                gpu = gpu_worker_memory(env, port=args.port, tenant=tenants[0], log=tmp / "w.log")
                mapped = "torch mapped" if gpu["torch"] else "no torch"
                print(
                    f"  GPU worker (celery, solo, after one tiny job: {gpu['status']} in "
                    f"{gpu['seconds']:.1f} s): {gpu['rss_mb']:6.1f} MB  ({mapped})"
                )
            print(f"\n{canceled} queued jobs of the load canceled, their messages purged.")
        finally:
            stop(server)


if __name__ == "__main__":
    main()
