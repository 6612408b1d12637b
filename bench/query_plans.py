"""The hot list queries at a realistic volume, with their PostgreSQL plans: which index serves each
filter of the API's and the studio's lists, and what it costs.

    eval "$(scripts/services.sh env)"
    .venv/bin/python bench/query_plans.py [--jobs 200000] [--orgs 20] [--full] [--drop]

Database: the one ``DATABASE_URL`` names (PostgreSQL only), migrated first. The rows are made
once, under organizations whose slugs start with ``plans-``, and reused by later runs (``--drop``
deletes them and stops). One organization, ``plans-big``, holds half of the jobs, so its queries
are the worst case; the others share the rest, as tenants of a shared platform do. Per job: one
result image (one in ten also a failed first attempt), one audit event; six in ten succeeded
images reviewed; per organization eight categories with three versions each, five templates
of two versions, a catalog of products (a tenth of the organization's jobs), a run with an item
per product, webhook deliveries. Everything is written with ``bulk_create``, then ``ANALYZE``d.

Each query is the real one: the selector's queryset, narrowed by the list's own FilterSet (or
the studio view's filters), ordered and cut to a page as its paginator does, then
``QuerySet.explain(analyze=True, buffers=True)``. Printed per query: the execution time, shared
buffers hit/read and every scan node (an ``Index Scan using …`` or, where the planner found one
cheaper, a ``Seq Scan``); ``--full`` prints the whole plan. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PREFIX = "plans-"
BATCH = 5_000
STATUSES = (  # (status, share in 1000): what a busy platform's jobs table holds
    ("succeeded", 900),
    ("failed", 30),
    ("failed_quality", 20),
    ("pending", 30),
    ("running", 10),
    ("canceled", 10),
)
SCAN = re.compile(r"((?:Parallel )?(?:Index Only Scan|Index Scan|Bitmap Index Scan|Seq Scan)[^(]*)")


def configure() -> None:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        raise SystemExit(
            'DATABASE_URL is not PostgreSQL: run `eval "$(scripts/services.sh env)"` first.'
        )
    ensure_database(url)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "DJANGO_DEBUG": "false",  # DEBUG keeps every query's text: megabytes of INSERTs
            "CELERY_BROKER_URL": "memory://",
            "EASEL_LOG_LEVEL": "WARNING",
        }
    )


def ensure_database(url: str) -> None:
    """Create the database ``url`` names when the server does not have it yet."""
    import psycopg2
    from psycopg2 import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = psycopg2.connect(urlunsplit(parts._replace(path="/postgres")))
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    admin.close()


# --- seeding ------------------------------------------------------------------------------------


def batched(rows: Iterator[Any], model: Any) -> int:
    """``bulk_create`` ``rows`` in batches; how many were written."""
    written, batch = 0, []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            model.objects.bulk_create(batch)
            written, batch = written + len(batch), []
    if batch:
        model.objects.bulk_create(batch)
        written += len(batch)
    return written


def status_for(n: int) -> str:
    slot = n % 1000
    for status, share in STATUSES:
        if slot < share:
            return status
        slot -= share
    return STATUSES[0][0]


def seed(*, jobs: int, orgs: int) -> None:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from tenants.models import Organization, Team

    user, _ = get_user_model().objects.get_or_create(username=f"{PREFIX}owner")
    base = seed_base_model()
    now = timezone.now()
    shares = [jobs // 2] + [max(1, (jobs - jobs // 2) // max(1, orgs - 1))] * (orgs - 1)
    for number, share in enumerate(shares):
        slug = f"{PREFIX}big" if number == 0 else f"{PREFIX}{number:02d}"
        if Organization.objects.filter(slug=slug).exists():
            continue
        started = time.perf_counter()
        org = Organization.objects.create(name=slug, slug=slug)
        team = Team.objects.create(organization=org, name="Team", slug="team")
        seed_organization(org=org, team=team, user=user, base=base, jobs=share, now=now)
        print(f"  seeded {slug}: {share:,} jobs in {time.perf_counter() - started:.0f} s")


def seed_base_model() -> Any:
    from models_registry.models import BaseModel, BuildStatus

    base, _ = BaseModel.objects.get_or_create(
        name=f"{PREFIX}base", defaults={"family": "tiny", "status": BuildStatus.READY}
    )
    return base


def seed_organization(*, org: Any, team: Any, user: Any, base: Any, jobs: int, now: Any) -> None:
    from catalog.models import Catalog, CatalogRun, Product, RunItem
    from generation.models import (
        GeneratedImage,
        GenerationJob,
        ImageReview,
        PromptTemplate,
    )
    from models_registry.models import Category, ModelVersion
    from tenants.models import ApiKey, AuditEvent, WebhookDelivery, WebhookEndpoint

    categories = Category.objects.bulk_create(
        Category(organization=org, slug=f"c{i}", name=f"Category {i}", base_model=base)
        for i in range(8)
    )
    versions = ModelVersion.objects.bulk_create(
        ModelVersion(
            organization=org,
            category=c,
            base=base,
            kind="lora",
            artifact_uri="test://plans",
            sha256="0" * 64,
            status=("production", "staging", "candidate")[i],
        )
        for c in categories
        for i in range(3)
    )
    templates = PromptTemplate.objects.bulk_create(
        PromptTemplate(organization=org, application=f"app-{i}", version=v, text="a {x} mug")
        for i in range(5)
        for v in (1, 2)
    )
    spread = timedelta(days=90).total_seconds() / max(1, jobs)

    def job_rows() -> Iterator[GenerationJob]:
        for n in range(jobs):
            template = templates[n % len(templates)]
            version = versions[n % len(versions)]
            yield GenerationJob(
                organization=org,
                team=team,
                created_by=user if n % 3 else None,
                template=template,
                template_version=template.version,
                category=version.category,
                base_model=base,
                model_version=version,
                params={"width": 512, "height": 512, "steps": 25},
                prompt="a red mug on a white table",
                batch_key="plans",
                priority="bulk" if n % 4 else "interactive",
                status=status_for(n),
                created_at=now - timedelta(seconds=n * spread),
            )

    batched(job_rows(), GenerationJob)
    succeeded = GenerationJob.objects.filter(organization=org, status="succeeded")

    def image_rows() -> Iterator[GeneratedImage]:
        for n, (job_id, created) in enumerate(succeeded.values_list("id", "created_at").iterator()):
            for attempt in (1, 2) if n % 10 == 0 else (1,):
                yield GeneratedImage(
                    organization=org,
                    job_id=job_id,
                    index=0,
                    attempt=attempt,
                    seed=n,
                    storage_key=f"orgs/{org.pk}/generations/{job_id}/0-{attempt}.png",
                    sha256="0" * 64,
                    width=512,
                    height=512,
                    scores={"passed": True, "score": 0.5 + (n % 50) / 100},
                    is_result=attempt == (2 if n % 10 == 0 else 1),
                    created_at=created + timedelta(seconds=5),
                )

    batched(image_rows(), GeneratedImage)
    results = GeneratedImage.objects.filter(organization=org, is_result=True)
    batched(
        (
            ImageReview(
                organization=org,
                image_id=image_id,
                status="approved" if n % 5 else "rejected",
                gate_passed=True,
                reviewer=user,
            )
            for n, image_id in enumerate(results.values_list("id", flat=True).iterator())
            if n % 10 < 6
        ),
        ImageReview,
    )
    key = ApiKey.objects.create(
        organization=org, team=team, name="key", prefix=f"pl{org.pk:06d}", secret_hash="0" * 64
    )
    batched(
        (
            AuditEvent(
                organization=org,
                actor_api_key=key,
                verb=("generation.succeeded", "generation.started")[n % 2],
                object_type="generation_job",
                object_id=str(job_id),
                at=created,
            )
            for n, (job_id, created) in enumerate(
                GenerationJob.objects.filter(organization=org)
                .values_list("id", "created_at")
                .iterator()
            )
        ),
        AuditEvent,
    )
    endpoint = WebhookEndpoint.objects.create(
        organization=org,
        url="https://hooks.example.com/",
        secret="whsec_x",  # noqa: S106 (made-up rows for the plans)
        events=[],
    )
    batched(
        (
            WebhookDelivery(
                organization=org,
                endpoint=endpoint,
                event="generation.succeeded",
                payload={},
                status="succeeded",
                created_at=now - timedelta(minutes=n),
            )
            for n in range(max(1, jobs // 10))
        ),
        WebhookDelivery,
    )
    catalog = Catalog.objects.create(organization=org, slug="main", name="Main")
    batched(
        (
            Product(
                organization=org,
                catalog=catalog,
                sku=f"SKU-{n:07d}",
                name=f"Mug {n}",
                category=categories[n % len(categories)],
                content_hash="0" * 64,
            )
            for n in range(max(1, jobs // 10))
        ),
        Product,
    )
    run = CatalogRun.objects.create(organization=org, catalog=catalog, mode="all", status="running")
    CatalogRun.objects.bulk_create(
        CatalogRun(
            organization=org,
            catalog=catalog,
            mode="missing",
            status="completed",
            created_at=now - timedelta(days=n),
        )
        for n in range(1, 60)
    )
    batched(
        (
            RunItem(
                run=run,
                organization=org,
                product_id=product_id,
                status=("succeeded", "queued", "submitted", "failed")[n % 4],
            )
            for n, product_id in enumerate(
                Product.objects.filter(catalog=catalog).values_list("id", flat=True).iterator()
            )
        ),
        RunItem,
    )


def drop() -> None:
    from django.db import connection

    from tenants.models import Organization

    orgs = list(Organization.objects.filter(slug__startswith=PREFIX).values_list("pk", flat=True))
    # Raw deletes, children first: the ORM's cascade would load a million rows to delete them.
    tables = [
        ("catalog_runitem", "organization_id"),
        ("catalog_catalogrun", "organization_id"),
        ("catalog_product", "organization_id"),
        ("catalog_catalog", "organization_id"),
        ("tenants_webhookdelivery", "organization_id"),
        ("tenants_webhookendpoint", "organization_id"),
        ("tenants_auditevent", "organization_id"),
        ("generation_imagereview", "organization_id"),
        ("generation_generatedimage", "organization_id"),
        ("generation_generationjob", "organization_id"),
        ("generation_prompttemplate", "organization_id"),
        ("models_registry_modelversion", "organization_id"),
        ("models_registry_category", "organization_id"),
        ("tenants_apikey", "organization_id"),
    ]
    with connection.cursor() as cursor:
        for table, column in tables:
            cursor.execute(f"DELETE FROM {table} WHERE {column} = ANY(%s)", [orgs])  # noqa: S608
    Organization.objects.filter(pk__in=orgs).delete()
    print(f"dropped {len(orgs)} organizations ({PREFIX}*)")


# --- the queries --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    name: str
    build: Callable[[Any], Any]  # organization → the sliced queryset a page reads


def api_page(filterset: Any, queryset: Any, params: dict[str, str], *ordering: str) -> Any:
    """What a cursor-paginated API list reads: the FilterSet's queryset, ordered, one page."""
    from django.http import QueryDict

    f = filterset(QueryDict(urlencode(params)), queryset=queryset)
    assert f.is_valid(), f.errors
    return f.qs.order_by(*ordering)[:51]


def queries() -> list[Query]:
    from catalog import selectors as catalog_selectors
    from catalog.api import ItemFilter, ProductFilter, RunFilter
    from generation import review_selectors
    from generation import selectors as generation_selectors
    from generation.api.generations import GenerationFilter
    from generation.models import GenerationJob
    from generation.template_selectors import prompt_template_latest_list
    from models_registry import selectors as registry_selectors
    from models_registry.api.views import ModelVersionFilter
    from tenants import selectors as tenant_selectors
    from tenants import webhooks
    from tenants.api.views import AuditEventFilter

    def jobs(params: dict[str, str]) -> Callable[[Any], Any]:
        return lambda org: api_page(
            GenerationFilter,
            generation_selectors.generation_job_list_for_org(org=org),
            params,
            "-created_at",
        )

    def newest_job(org: Any) -> Any:
        return GenerationJob.objects.filter(organization=org).order_by("-created_at").first()

    def day_window(org: Any) -> Callable[[Any], Any]:
        day = newest_job(org).created_at - timedelta(days=30)
        return jobs(
            {
                "created_after": f"{day:%Y-%m-%d}T00:00:00Z",
                "created_before": f"{day + timedelta(days=1):%Y-%m-%d}T00:00:00Z",
            }
        )(org)

    def main_catalog(org: Any) -> Any:
        return catalog_selectors.get_catalog_for_org(org=org, slug="main")

    def running_run(org: Any) -> Any:
        return catalog_selectors.catalog_run_list_for_org(org=org).get(status="running")

    def endpoint(org: Any) -> Any:
        return webhooks.webhook_endpoint_list_for_org(org=org).first()

    def review_queue(org: Any) -> Any:
        return review_selectors.review_queue_for_org(org=org)[:60]

    return [
        Query("GET /generations", jobs({})),
        Query("GET /generations?status=pending", jobs({"status": "pending"})),
        Query("GET /generations?status=failed", jobs({"status": "failed"})),
        Query("GET /generations?category=c3", jobs({"category": "c3"})),
        Query("GET /generations?template=app-2", jobs({"template": "app-2"})),
        Query(
            "GET /generations?model_version=<id>",
            lambda org: jobs({"model_version": str(org.model_versions.order_by("pk").first().pk)})(
                org
            ),
        ),
        Query("GET /generations?created_after&created_before (a day)", day_window),
        Query(
            "GET /generations?priority=interactive&status=succeeded",
            jobs({"priority": "interactive", "status": "succeeded"}),
        ),
        Query(
            "GET /model-versions?category=c1&status=production",
            lambda org: api_page(
                ModelVersionFilter,
                registry_selectors.model_version_list_for_org(org=org),
                {"category": "c1", "status": "production"},
                "-created_at",
            ),
        ),
        Query(
            "GET /templates (latest of each)",
            lambda org: prompt_template_latest_list(org=org)[:51],
        ),
        Query(
            "GET /catalog-runs?status=running",
            lambda org: api_page(
                RunFilter,
                catalog_selectors.catalog_run_list_for_org(org=org),
                {"status": "running"},
                "-created_at",
            ),
        ),
        Query(
            "GET /catalog-runs/<id>/items?status=queued",
            lambda org: api_page(
                ItemFilter,
                catalog_selectors.run_item_list(run=running_run(org)),
                {"status": "queued"},
                "id",
            ),
        ),
        Query(
            "GET /catalogs/main/products",
            lambda org: api_page(
                ProductFilter,
                catalog_selectors.product_list_for_catalog(catalog=main_catalog(org)),
                {},
                "id",
            ),
        ),
        Query(
            "GET /catalogs/main/products?category=c2",
            lambda org: api_page(
                ProductFilter,
                catalog_selectors.product_list_for_catalog(catalog=main_catalog(org)),
                {"category": "c2"},
                "id",
            ),
        ),
        Query(
            "GET /audit-events?verb=generation.succeeded",
            lambda org: api_page(
                AuditEventFilter,
                tenant_selectors.audit_event_list_for_org(org=org),
                {"verb": "generation.succeeded"},
                "-at",
                "-id",
            ),
        ),
        Query(
            "GET /audit-events?object_type&object_id (one job's history)",
            lambda org: api_page(
                AuditEventFilter,
                tenant_selectors.audit_event_list_for_org(org=org),
                {"object_type": "generation_job", "object_id": str(newest_job(org).pk)},
                "-at",
                "-id",
            ),
        ),
        Query(
            "GET /webhooks/<id>/deliveries",
            lambda org: webhooks.webhook_delivery_list_for_endpoint(
                endpoint=endpoint(org)
            ).order_by("-created_at")[:51],
        ),
        Query(
            "studio jobs ?status=running (page 1 of 25)",
            lambda org: (
                generation_selectors.generation_job_list_for_org(org=org)
                .filter(status="running")
                .order_by("-created_at")[:25]
            ),
        ),
        Query("studio review queue (first 60)", review_queue),
        Query(
            "studio gallery ?status=approved (page 1 of 48)",
            lambda org: review_selectors.gallery_for_org(org=org, status="approved")[:48],
        ),
        Query(
            "studio catalog page: products by sku (page 1 of 100)",
            lambda org: catalog_selectors.product_list_for_catalog(
                catalog=main_catalog(org)
            ).order_by("sku")[:100],
        ),
    ]


# --- reporting ----------------------------------------------------------------------------------


def index_columns() -> dict[str, str]:
    """Each index's name → its columns as created (``(organization_id, created_at DESC)``)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'")
        rows = cursor.fetchall()
    return {name: definition[definition.index(" USING ") + 7 :] for name, definition in rows}


def summary(plan: str, columns: dict[str, str]) -> tuple[str, str, list[str]]:
    """Execution time, buffers of the top node, and each scan node of an EXPLAIN text, its
    index's columns added."""
    time_ms = re.search(r"Execution Time: ([\d.]+) ms", plan)
    buffers = re.search(r"Buffers: (shared [^\n]*)", plan)
    scans = []
    for line in plan.splitlines():
        match = SCAN.search(line)
        if match:
            scan = match.group(1).strip()
            index = re.search(r"(?:Scan(?: Backward)? using|Index Scan on) (\S+)", scan)
            if index and index.group(1) in columns:
                scan += f"  [{columns[index.group(1)]}]"
            scans.append(scan)
    return (
        f"{float(time_ms.group(1)):8.2f} ms" if time_ms else "?",
        buffers.group(1) if buffers else "",
        scans,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=200_000, help="jobs across all orgs")
    parser.add_argument("--orgs", type=int, default=20)
    parser.add_argument("--full", action="store_true", help="print each whole plan")
    parser.add_argument("--drop", action="store_true", help="delete the seeded rows and stop")
    args = parser.parse_args()
    configure()
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from tenants.models import Organization

    call_command("migrate", verbosity=0)
    if args.drop:
        drop()
        return
    started = time.perf_counter()
    print(f"Seeding {args.jobs:,} jobs across {args.orgs} organizations (kept for the next run)")
    seed(jobs=args.jobs, orgs=args.orgs)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0].split()[0]
    print(f"ready in {time.perf_counter() - started:.0f} s; PostgreSQL {version}, ANALYZEd\n")
    big = Organization.objects.get(slug=f"{PREFIX}big")
    print(f"Organization {big.slug}: {big.generation_jobs.count():,} jobs\n")
    columns = index_columns()
    for query in queries():
        queryset = query.build(big)
        plan = queryset.explain(analyze=True, buffers=True)
        elapsed, buffers, scans = summary(plan, columns)
        print(f"{query.name}\n  {elapsed}   {buffers}")
        for scan in scans:
            print(f"    {scan}")
        if args.full:
            print("\n".join(f"      | {line}" for line in plan.splitlines()))
        print()


if __name__ == "__main__":
    main()
