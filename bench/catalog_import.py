"""Catalog import and fan-out: a 100,000-row CSV imported, re-imported and fanned out into a run,
with the wall time and peak RSS of each phase, against a naive per-row upsert, one run.

    eval "$(scripts/services.sh env)"
    .venv/bin/python bench/catalog_import.py [--rows 100000] [--naive-rows 5000] [--sqlite]

Database: PostgreSQL from ``DATABASE_URL`` (the server's ``easel_bench_catalog`` database, dropped,
created and migrated afresh each run), or with ``--sqlite`` the embedded default (a new file in a
temporary folder). Settings: ``config.settings.local`` with ``DJANGO_DEBUG=false``, because with
DEBUG on Django keeps the text of the last 9,000 queries — megabytes of bulk INSERTs — which would
be counted as the import's memory.

The CSV (``sku,name,category,template,colour``; two categories on the built-in ``tiny`` base model,
one template ``listing`` = "a {colour} {name}, studio photo") is written row by row to a file on
disk, never held in memory; one row in 1,000 is bad (missing name, unknown category, repeated SKU,
unknown template, missing template variable, in turn) so the rejection path runs too. A second file
is the same with the colour of every 20th good row changed (5 % of rows edited).

Phases, each timed with ``time.perf_counter`` around one service call, its imported counts
checked against what the file holds:

1. ``catalog_import`` of the file into an empty catalog (every good row created);
2. the same file again (every row unchanged);
3. the edited file (5 % updated, the rest unchanged);
4. naive: the first ``--naive-rows`` rows of the file into an empty catalog of their own, one
   ``Product.objects.update_or_create`` per row (csv.DictReader, the category looked up in a
   dict, the same content hash), in one transaction — the loop a first version would have. It
   runs twice, before phase 1 and after phase 3 (each into a fresh catalog), and the faster of
   the two is kept: load from other processes only ever slows a measurement down, so the ratio
   (first import's rows/s ÷ naive rows/s) errs against the import. Its time is extrapolated to N
   rows (stated as such);
5. fan-out: ``catalog_run_create`` + ``catalog_run_start`` for mode ``all`` (one RunItem per
   product, then the first ``catalog_run_advance``, which submits as many jobs as the in-flight cap
   allows). The first advance is timed by a wrapper that calls the real function; the rest of
   the call (selecting the products, bulk-creating the items, the commit) is the difference. Then
   advances at the cap (nothing to submit; median of 20), advances with room for one job (what
   each finished job triggers once the run is under way: the cap raised by one each time; median
   of 5), and one advance with the cap raised by a chunk, which submits ``EASEL_CATALOG_CHUNK``.

Peak RSS: a thread reads the process's resident set from ``/proc/self/statm`` every 5 ms during
each phase; the table gives the RSS when the phase began and the peak during it (the database
server's memory is not included). ``ru_maxrss``, the process's high-water mark, is printed too.

The boundary to Celery: ``catalog.tasks.enqueue_run_start``/``enqueue_run_advance``/
``enqueue_export`` and ``generation.tasks.enqueue_generation`` are replaced by functions that
record what would have been sent (as in ``tests/catalog/conftest.py``), and the broker is
``memory://`` so nothing else can reach a real one. No model weights are loaded: the tiny model is
built (or reused from ``EASEL_BUILD_CACHE_DIR``) only so the categories have a base model.
Results go to stdout; copy them into BENCHMARKS.md. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gc
import os
import platform
import resource
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BENCH_DATABASE = "easel_bench_catalog"
CATEGORIES = ("produce", "kitchen")
TEMPLATE_TEXT = "a {colour} {name}, studio photo"
COLOURS = ("red", "green", "blue", "yellow", "white", "black", "orange")
EDITED_COLOUR = "teal"  # never among COLOURS, so an edited row always changes
NOUNS = ("apple", "mug", "bottle", "banana", "bowl", "kettle", "pear", "plate")
BAD_EVERY = 1000  # one bad row in 1,000
EDIT_EVERY = 20  # 5 % of the rows edited
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
MB = 1024 * 1024


# --- the files --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileCounts:
    rows: int
    good: int
    bad: int
    edited: int


def _row(i: int, *, edited: bool) -> list[str]:
    """Row ``i`` of the file: good, or one of five kinds of bad row every ``BAD_EVERY`` rows."""
    sku, name = f"SKU-{i:07d}", f"{COLOURS[i % 3].title()} {NOUNS[i % len(NOUNS)]} {i}"
    category, colour = CATEGORIES[i % 2], COLOURS[i % len(COLOURS)]
    if i % BAD_EVERY == BAD_EVERY // 2:
        kind = (i // BAD_EVERY) % 5
        if kind == 0:
            return [sku, "", category, "listing", colour]  # missing name
        if kind == 1:
            return [sku, name, "furniture", "listing", colour]  # unknown category
        if kind == 2:
            return [f"SKU-{i - 1:07d}", name, category, "listing", colour]  # repeated SKU
        if kind == 3:
            return [sku, name, category, "no-such-template", colour]  # unknown template
        return [sku, name, category, "listing", ""]  # the template's {colour} missing
    if edited and i % EDIT_EVERY == 0:
        colour = EDITED_COLOUR
    return [sku, name, category, "listing", colour]


def write_csv(path: Path, *, rows: int, edited: bool) -> FileCounts:
    """Write the file row by row (never whole in memory); what it holds."""
    bad = changed = 0
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["sku", "name", "category", "template", "colour"])
        for i in range(1, rows + 1):
            writer.writerow(_row(i, edited=edited))
            if i % BAD_EVERY == BAD_EVERY // 2:
                bad += 1
            elif i % EDIT_EVERY == 0:
                changed += 1
    return FileCounts(rows=rows, good=rows - bad, bad=bad, edited=changed if edited else 0)


# --- measuring --------------------------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_BYTES


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    rss_start: int = 0
    rss_peak: int = 0
    units: int = 0  # rows or jobs
    note: str = ""


@contextmanager
def measured(name: str) -> Iterator[Phase]:
    """Time the block and sample the RSS every 5 ms in a thread while it runs."""
    gc.collect()
    phase = Phase(name=name, rss_start=rss_bytes())
    phase.rss_peak = phase.rss_start
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            phase.rss_peak = max(phase.rss_peak, rss_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        yield phase
    finally:
        phase.seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        phase.rss_peak = max(phase.rss_peak, rss_bytes())


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


# --- the database -----------------------------------------------------------------------------


def _fresh_postgres(url: str) -> str:
    """Drop and create ``BENCH_DATABASE`` on the server of ``url``; the URL of the new database."""
    import psycopg2
    from psycopg2 import sql

    parts = urlsplit(url)
    admin = psycopg2.connect(urlunsplit(parts._replace(path="/postgres")))
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(BENCH_DATABASE)))
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DATABASE)))
    admin.close()
    return urlunsplit(parts._replace(path=f"/{BENCH_DATABASE}"))


def configure_environment(*, tmp: Path, sqlite: bool, rows: int) -> None:
    """Settings for this process, all state but the database under ``tmp``."""
    if sqlite:
        database_url = f"sqlite:///{tmp / 'bench.sqlite3'}"
    else:
        url = os.environ.get("DATABASE_URL", "")
        if not url.startswith(("postgres://", "postgresql://")):
            raise SystemExit(
                'DATABASE_URL is not PostgreSQL: run `eval "$(scripts/services.sh env)"` first '
                "(scripts/services.sh up starts the services), or pass --sqlite."
            )
        database_url = _fresh_postgres(url)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "DJANGO_DEBUG": "false",
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": "memory://",
            "EASEL_VAR_DIR": str(tmp / "var"),
            "EASEL_STORAGE": "local",
            "EASEL_LOG_LEVEL": "WARNING",
            "EASEL_CATALOG_MAX_ROWS": str(max(200_000, rows + 1)),
            "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
        }
    )


def database_description() -> str:
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            version = cursor.fetchone()[0].split()[0]
            cursor.execute("SHOW autovacuum")
            autovacuum = cursor.fetchone()[0]
        return f"PostgreSQL {version} (database {BENCH_DATABASE}, autovacuum {autovacuum})"
    import sqlite3

    return f"SQLite {sqlite3.sqlite_version} (WAL, synchronous=NORMAL)"


# --- the organization -------------------------------------------------------------------------


@dataclass
class Setup:
    actor: Any
    catalog: Any
    naive_catalogs: list[Any]
    categories: dict[str, Any]


def make_setup() -> Setup:
    """An organization with a team, two categories on the tiny model, the ``listing`` template
    and two empty catalogs (as ``tests/catalog/conftest.py`` builds them)."""
    from catalog.services import catalog_create
    from generation.template_services import prompt_template_create
    from models_registry import services as registry
    from models_registry.builtin import build_tiny_model
    from tenants import services as tenant_services
    from tenants.principal import Principal
    from tenants.roles import Role

    base_model = build_tiny_model()
    user = tenant_services.user_create(username="bench", password=secrets.token_urlsafe(16))
    org = tenant_services.organization_create(name="Bench", slug="bench", owner=user)
    owner = Principal(org=org, user=user, role=Role.OWNER)
    team = tenant_services.team_create(actor=owner, name="Bench", slug="bench")
    org.memberships.get(user=user).teams.add(team)
    actor = Principal(org=org, user=user, role=Role.OWNER, team=team)
    categories = {
        slug: registry.category_create(
            actor=actor, slug=slug, name=slug.title(), base_model=base_model
        )
        for slug in CATEGORIES
    }
    prompt_template_create(actor=actor, application="listing", text=TEMPLATE_TEXT)
    return Setup(
        actor=actor,
        catalog=catalog_create(actor=actor, slug="bench", name="Bench range"),
        naive_catalogs=[
            catalog_create(actor=actor, slug=f"naive-{i}", name="Naive baseline") for i in (1, 2)
        ],
        categories=categories,
    )


# --- the phases -------------------------------------------------------------------------------


def run_import(setup: Setup, path: Path, phase: Phase, expected: dict[str, int]) -> None:
    from catalog.imports import catalog_import

    with path.open("rb") as stream:
        record = catalog_import(
            actor=setup.actor,
            catalog=setup.catalog,
            stream=stream,
            file_name=path.name,
            size=path.stat().st_size,
        )
    got = {
        "created": record.rows_created,
        "updated": record.rows_updated,
        "unchanged": record.rows_unchanged,
        "rejected": record.rows_rejected,
    }
    if got != expected:
        raise SystemExit(f"{phase.name}: the import counted {got}, the file holds {expected}")
    phase.units = record.rows_total
    phase.note = " / ".join(f"{got[k]:,}" for k in ("created", "updated", "unchanged", "rejected"))


def naive_upsert(setup: Setup, catalog: Any, path: Path, *, limit: int) -> int:
    """The first ``limit`` rows, one ``update_or_create`` each, in one transaction; rows read."""
    from django.db import transaction

    from catalog.imports import content_hash
    from catalog.models import Product

    read = 0
    with transaction.atomic(), path.open(newline="", encoding="utf-8") as source:
        for row in csv.DictReader(source):
            if read >= limit:
                break
            read += 1
            category = setup.categories.get(row["category"])
            if not row["sku"] or not row["name"] or category is None:
                continue
            attributes = {"colour": row["colour"]}
            Product.objects.update_or_create(
                catalog=catalog,
                sku=row["sku"],
                defaults={
                    "organization_id": catalog.organization_id,
                    "name": row["name"],
                    "category": category,
                    "template": row["template"],
                    "attributes": attributes,
                    "content_hash": content_hash(
                        name=row["name"],
                        category=category.slug,
                        template=row["template"],
                        attributes=attributes,
                    ),
                },
            )
    return read


@dataclass
class FanOut:
    start: Phase
    first_advance_seconds: float
    first_jobs: int
    at_cap_ms: float
    one_job_ms: float
    chunk_seconds: float
    chunk_jobs: int
    cap: int
    chunk: int


def fan_out(setup: Setup) -> FanOut:
    from django.conf import settings
    from django.test import override_settings

    from catalog import runs
    from catalog.models import ItemStatus, RunMode

    cap, chunk = int(settings.EASEL_CATALOG_MAX_IN_FLIGHT), int(settings.EASEL_CATALOG_CHUNK)
    real_advance = runs.catalog_run_advance
    first: list[float] = []

    def timed_advance(**kwargs: Any) -> int:
        seconds, count = timed(lambda: real_advance(**kwargs))
        first.append(seconds)
        return count

    with measured("fan-out: run create + start") as phase:
        run = runs.catalog_run_create(actor=setup.actor, catalog=setup.catalog, mode=RunMode.ALL)
        with mock.patch.object(runs, "catalog_run_advance", timed_advance):
            runs.catalog_run_start(run_id=run.pk)
    run.refresh_from_db()
    phase.units = run.items_total
    submitted = run.items.filter(status=ItemStatus.SUBMITTED).count()

    def advance(expected: int) -> float:
        seconds, count = timed(lambda: runs.catalog_run_advance(run_id=run.pk))
        if count != expected:
            raise SystemExit(f"an advance submitted {count} jobs, not {expected}")
        return seconds

    at_cap = [advance(0) for _ in range(20)]
    one_job = []
    for extra in range(1, 6):
        with override_settings(EASEL_CATALOG_MAX_IN_FLIGHT=submitted + extra):
            one_job.append(advance(1))
    with override_settings(EASEL_CATALOG_MAX_IN_FLIGHT=submitted + 5 + chunk):
        chunk_seconds = advance(chunk)
    return FanOut(
        start=phase,
        first_advance_seconds=first[0],
        first_jobs=submitted,
        at_cap_ms=statistics.median(at_cap) * 1000,
        one_job_ms=statistics.median(one_job) * 1000,
        chunk_seconds=chunk_seconds,
        chunk_jobs=chunk,
        cap=cap,
        chunk=chunk,
    )


@contextmanager
def nothing_sent() -> Iterator[dict[str, int]]:
    """Replace the enqueue functions (the boundary to Celery) by counters."""
    sent = {"start": 0, "advance": 0, "export": 0, "generation": 0}

    def count(kind: str) -> Callable[..., None]:
        def record(*_args: Any, **_kwargs: Any) -> None:
            sent[kind] += 1

        return record

    with (
        mock.patch("catalog.tasks.enqueue_run_start", count("start")),
        mock.patch("catalog.tasks.enqueue_run_advance", count("advance")),
        mock.patch("catalog.tasks.enqueue_export", count("export")),
        mock.patch("generation.tasks.enqueue_generation", count("generation")),
    ):
        yield sent


# --- main -------------------------------------------------------------------------------------


def _mb(value: int) -> str:
    return f"{value / MB:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the file")
    parser.add_argument(
        "--naive-rows", type=int, default=5000, help="rows of the per-row baseline (extrapolated)"
    )
    parser.add_argument("--sqlite", action="store_true", help="the embedded SQLite database")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="easel-bench-catalog-"))
    configure_environment(tmp=tmp, sqlite=args.sqlite, rows=args.rows)
    load_start = os.getloadavg()[0]
    import django

    django.setup()
    from django.core.management import call_command

    seconds, _ = timed(lambda: call_command("migrate", verbosity=0))
    print(f"migrated in {seconds:.0f} s; {database_description()}", flush=True)
    setup = make_setup()
    if "torch" in sys.modules:  # the tiny model's first build loads it; one thread, as elsewhere
        sys.modules["torch"].set_num_threads(1)

    original, edited = tmp / "products.csv", tmp / "products-edited.csv"
    seconds, counts = timed(lambda: write_csv(original, rows=args.rows, edited=False))
    edited_counts = write_csv(edited, rows=args.rows, edited=True)
    print(
        f"wrote {counts.rows:,} rows ({counts.bad} bad, {original.stat().st_size / MB:.1f} MB) "
        f"in {seconds:.1f} s; the edited copy changes {edited_counts.edited:,} rows",
        flush=True,
    )
    good, bad = counts.good, counts.bad
    expected = {
        "first import (all created)": {
            "created": good,
            "updated": 0,
            "unchanged": 0,
            "rejected": bad,
        },
        "re-import (all unchanged)": {
            "created": 0,
            "updated": 0,
            "unchanged": good,
            "rejected": bad,
        },
        "re-import, 5 % edited": {
            "created": 0,
            "updated": edited_counts.edited,
            "unchanged": good - edited_counts.edited,
            "rejected": bad,
        },
    }
    imports: list[Phase] = []
    naives: list[Phase] = []
    naive_limit = min(args.naive_rows, args.rows)

    def naive_round(when: str) -> None:
        catalog = setup.naive_catalogs[len(naives)]
        with measured(f"naive update_or_create, first {naive_limit:,} rows, {when}") as naive:
            naive.units = naive_upsert(setup, catalog, original, limit=naive_limit)
        naives.append(naive)
        print(f"{naive.name}: {naive.seconds:.1f} s, {naive.units / naive.seconds:,.0f} rows/s")

    with nothing_sent() as sent:
        naive_round("before")
        for name, path in zip(expected, (original, original, edited), strict=True):
            with measured(name) as phase:
                run_import(setup, path, phase, expected[name])
            imports.append(phase)
            print(f"{name}: {phase.seconds:.1f} s, {phase.units / phase.seconds:,.0f} rows/s")
        naive_round("after")
        fan = fan_out(setup)
    load_end = os.getloadavg()[0]
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

    first = imports[0]
    import_rate = first.units / first.seconds
    naive_rate = max(naive.units / naive.seconds for naive in naives)
    print(
        f"\n{dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; {os.cpu_count()} CPUs, "
        f"{platform.platform()}, Python {platform.python_version()}, {database_description()}; "
        f"load average {load_start:.2f} at the start, {load_end:.2f} at the end\n"
    )
    print(
        "| phase | rows | created / updated / unchanged / rejected | wall s | rows/s "
        "| RSS at start MB | peak RSS MB | peak − start MB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for phase in imports:
        print(
            f"| {phase.name} | {phase.units:,} | {phase.note} | {phase.seconds:.1f} "
            f"| {phase.units / phase.seconds:,.0f} | {_mb(phase.rss_start)} "
            f"| {_mb(phase.rss_peak)} | {_mb(phase.rss_peak - phase.rss_start)} |"
        )
    for naive in naives:
        rate = naive.units / naive.seconds
        print(
            f"| {naive.name} | {naive.units:,} | (extrapolated to {args.rows:,} rows: "
            f"{args.rows / rate:,.0f} s) | {naive.seconds:.1f} | {rate:,.0f} "
            f"| {_mb(naive.rss_start)} | {_mb(naive.rss_peak)} "
            f"| {_mb(naive.rss_peak - naive.rss_start)} |"
        )
    start = fan.start
    print(
        f"\nfirst import ÷ the faster naive round, rows/s: **{import_rate / naive_rate:.1f}×**\n\n"
        "| fan-out step | items / jobs | wall | per item or job | peak − start RSS MB |\n"
        "|---|---|---|---|---|\n"
        f"| run create + start (items + first advance) | {start.units:,} items, "
        f"{fan.first_jobs} jobs | {start.seconds:.1f} s | | "
        f"{_mb(start.rss_peak - start.rss_start)} (start {_mb(start.rss_start)}, "
        f"peak {_mb(start.rss_peak)}) |\n"
        f"| … selecting products, making the RunItems, commit | {start.units:,} items "
        f"| {start.seconds - fan.first_advance_seconds:.1f} s "
        f"| {(start.seconds - fan.first_advance_seconds) / start.units * 1e6:.0f} µs | |\n"
        f"| … first advance (cap {fan.cap}, chunk {fan.chunk}) | {fan.first_jobs} jobs "
        f"| {fan.first_advance_seconds * 1000:.0f} ms "
        f"| {fan.first_advance_seconds / max(fan.first_jobs, 1) * 1000:.1f} ms | |\n"
        f"| advance at the cap (nothing to submit), median of 20 | 0 jobs "
        f"| {fan.at_cap_ms:.1f} ms | | |\n"
        f"| advance with room for one job (each finished job), median of 5 | 1 job "
        f"| {fan.one_job_ms:.0f} ms | | |\n"
        f"| advance with room for a chunk | {fan.chunk_jobs} jobs "
        f"| {fan.chunk_seconds * 1000:.0f} ms "
        f"| {fan.chunk_seconds / max(fan.chunk_jobs, 1) * 1000:.1f} ms | |"
    )
    print(
        f"\nprocess ru_maxrss (high-water mark of the whole run): {_mb(max_rss)} MB; torch "
        f"{'loaded' if 'torch' in sys.modules else 'not loaded'}; recorded instead of sent: "
        f"{sent}\n(temporary files in {tmp})"
    )


if __name__ == "__main__":
    main()
