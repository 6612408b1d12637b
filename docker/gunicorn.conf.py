"""gunicorn for the web container: ``gunicorn -c docker/gunicorn.conf.py config.wsgi``.

Threads, so that ``Prefer: wait`` requests (held up to 60 s) do not take a whole process each; a
timeout above that hold. With ``PROMETHEUS_MULTIPROC_DIR`` set (compose mounts a tmpfs there),
every process writes its request and platform series to that folder and ``/metrics`` adds them
up; the folder is emptied when the server starts and a dead process's gauges are dropped.
Processes: ``WEB_CONCURRENCY`` (3), threads each: ``GUNICORN_THREADS`` (4); any other option
through gunicorn's ``GUNICORN_CMD_ARGS``.
"""

import os
import pathlib

bind = "0.0.0.0:8000"
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = 90  # above Prefer: wait's 60 s
graceful_timeout = 70  # on SIGTERM, let held requests answer
keepalive = 5
accesslog = "-"
# The reverse proxy in front sets X-Forwarded-Proto (SECURE_PROXY_SSL_HEADER in production.py).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")


def on_starting(server) -> None:  # type: ignore[no-untyped-def]
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        path = pathlib.Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # a previous server's values
            stale.unlink()


def child_exit(server, worker) -> None:  # type: ignore[no-untyped-def]
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
