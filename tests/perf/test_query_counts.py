"""No N+1 queries: every list endpoint of the API and every studio page that lists things makes
as many SQL queries for a page of 15 rows as for a page of 3 (each row with what the page shows
of it: images, attempts, versions, aliases, items and their jobs, a schedule's beat row).

The routes are read from the URLconf (``tests.security.routes``) and the API's lists from its
OpenAPI schema, so a new list route fails ``test_every_list_route_has_a_query_count_case`` until
it gets a case here (or, for a route that lists nothing, a line in ``NOT_LISTS`` saying why).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from catalog.services import catalog_create
from generation.template_services import prompt_template_create
from models_registry.models import BaseModel, BuildStatus, Category, ModelVersion, VersionKind
from tests.factories import Persona
from tests.security.routes import all_routes

from .rows import World

pytestmark = pytest.mark.django_db

SMALL, LARGE = 3, 15


@dataclass(frozen=True)
class Case:
    """``add(world, n)`` adds ``n`` rows to the list and returns the route's URL arguments."""

    add: Callable[[World, int], dict[str, Any] | None]
    query: str = ""
    grows: bool = True  # the page shows more with more rows (false: a fixed list)


def _each(method: str, **kwargs: Any) -> Callable[[World, int], None]:
    return lambda w, n: getattr(w, method)(n, **kwargs)


def _job_with_images(w: World, n: int) -> dict[str, Any]:
    """One job whose image count is the list: its detail shows every image and attempt."""
    job = w.parent("job", lambda: w.job(images=0))
    first = job.images.count() // 2
    for index in range(first, first + n):
        w.job_images(job, index)
    return {"pk": job.pk}


def _training_with_images(w: World, n: int) -> dict[str, Any]:
    job = w.parent("training", lambda: w.training(images=0))
    first = job.images.count()
    for index in range(first, first + n):
        w.training_image(job, index)
    return {"pk": job.pk}


def _run(w: World, n: int) -> dict[str, Any]:
    return {"pk": w.add_run_items(n).pk}


def _products(w: World, n: int) -> dict[str, Any]:
    w.add_products(n)
    return {"slug": w.catalog.slug}


def _catalog_page(w: World, n: int) -> dict[str, Any]:
    w.add_products(n)
    w.add_runs(n)
    w.add_schedules(n)
    w.add_imports(n)
    return {"slug": w.catalog.slug}


def _category_page(w: World, n: int) -> dict[str, Any]:
    w.add_versions(n)
    return {"slug": w.category.slug}


def _form_choices(w: World, n: int) -> None:
    w.add_templates(n)
    w.add_categories(n)


def _studio(kwargs: Callable[[World, int], dict[str, Any]], key: str) -> Callable:
    """The same rows, the studio's URL parameter name for the object."""
    return lambda w, n: {key: kwargs(w, n)["pk"]}


CASES: dict[str, Case] = {
    # --- API -------------------------------------------------------------------------------
    "v1:team-list": Case(_each("add_teams")),
    "v1:api-key-list": Case(_each("add_api_keys")),
    "v1:audit-event-list": Case(_each("add_audit_events")),
    "v1:webhook-list": Case(_each("add_endpoints")),
    "v1:webhook-deliveries": Case(lambda w, n: {"pk": w.add_deliveries(n).pk}),
    "v1:usage": Case(_each("add_teams")),
    "v1:quotas": Case(_each("add_teams")),
    "v1:styles": Case(lambda w, n: None, grows=False),
    "v1:template-list": Case(_each("add_templates")),
    "v1:template-versions": Case(lambda w, n: {"application": w.add_template_versions(n)}),
    "v1:generation-list": Case(_each("add_jobs")),
    "v1:generation-detail": Case(_job_with_images),
    "v1:upload-list": Case(_each("add_uploads")),
    "v1:base-model-list": Case(_each("add_base_models")),
    "v1:category-list": Case(_each("add_categories")),
    "v1:category-alias-history": Case(_category_page),
    "v1:model-version-list": Case(_each("add_versions")),
    "v1:training-list": Case(_each("add_trainings")),
    "v1:training-detail": Case(_training_with_images),
    "v1:catalog-list": Case(_each("add_catalogs")),
    "v1:catalog-products": Case(_products),
    "v1:catalog-import-rejections": Case(lambda w, n: {"pk": w.add_rejections(n).pk}),
    "v1:catalog-run-list": Case(_each("add_runs")),
    "v1:catalog-run-items": Case(_run),
    "v1:schedule-list": Case(_each("add_schedules")),
    # --- studio ----------------------------------------------------------------------------
    "studio:home": Case(_each("add_jobs"), grows=False),  # the latest eight
    "studio:job_list": Case(_each("add_jobs")),
    "studio:job_detail": Case(_studio(_job_with_images, "job_id")),
    "studio:job_status": Case(_studio(_job_with_images, "job_id")),
    "studio:review_queue": Case(_each("add_jobs")),
    "studio:review_report": Case(_each("add_published")),
    "studio:gallery": Case(_each("add_jobs", reviewed=True)),
    "studio:generate": Case(_form_choices),
    "studio:generate_variables": Case(_form_choices, query="?template=perf", grows=False),
    "studio:category_list": Case(_each("add_categories")),
    "studio:category_detail": Case(_category_page),
    "studio:template_list": Case(_each("add_templates")),
    "studio:training_list": Case(_each("add_trainings")),
    "studio:training_detail": Case(_studio(_training_with_images, "job_id")),
    "studio:training_status": Case(_studio(_training_with_images, "job_id")),
    "studio:catalog_list": Case(_each("add_catalogs")),
    "studio:catalog_detail": Case(_catalog_page),
    "studio:catalog_run_detail": Case(_studio(_run, "run_id")),
    "studio:catalog_run_status": Case(_studio(_run, "run_id")),
}

# Routes that answer GET with one object, a form, a file or a redirect (or take only POST).
NOT_LISTS: dict[str, str] = {
    "v1:me": "one principal",
    "v1:organization": "one organization",
    "v1:team-detail": "one team",
    "v1:api-key-detail": "one key",
    "v1:api-key-revoke": "POST only",
    "v1:audit-event-detail": "one event",
    "v1:webhook-detail": "one endpoint",
    "v1:webhook-test": "POST only",
    "v1:webhook-delivery-detail": "one delivery and its few attempts (prefetched)",
    "v1:webhook-delivery-redeliver": "POST only",
    "v1:category-rubric": "one rubric",
    "v1:quality-settings": "one settings row",
    "v1:template-rubric-draft": "POST only",
    "v1:template-detail": "one template version",
    "v1:template-render": "POST only",
    "v1:image-file": "one file",
    "v1:generation-cancel": "POST only",
    "v1:image-detail": "one image",
    "v1:upload-detail": "one upload",
    "v1:image-download": "a redirect",
    "v1:provenance-verify": "POST only",
    "v1:base-model-detail": "one base model",
    "v1:category-detail": "one category and its two aliases (prefetched)",
    "v1:category-promote": "POST only",
    "v1:category-rollback": "POST only",
    "v1:model-version-detail": "one version and its lineage (a walk up its parents, capped)",
    "v1:training-cancel": "POST only",
    "v1:catalog-detail": "one catalog with its product count (annotated)",
    "v1:catalog-import-file": "POST only",
    "v1:catalog-import-detail": "one import; its rejections are one values() query",
    "v1:catalog-run-detail": "one run with its progress (one grouped count)",
    "v1:catalog-run-cancel": "POST only",
    "v1:catalog-run-export": "two signed links",
    "v1:catalog-run-pause": "POST only",
    "v1:catalog-run-resume": "POST only",
    "v1:schedule-detail": "one schedule",
    "studio:login": "a form",
    "studio:logout": "POST only",
    "studio:switch_org": "POST only",
    "studio:job_cancel": "POST only",
    "studio:review_bulk": "POST only",
    "studio:review_decide": "POST only",
    "studio:image_detail": "one image",
    "studio:image_file": "one file",
    "studio:promote": "POST only",
    "studio:rollback": "POST only",
    "studio:category_rubric": "one rubric form",
    "studio:template_rubric": "one rubric form",
    "studio:quality_settings": "three switches",
    "studio:training_cancel": "POST only",
    "studio:training_validation_file": "one file",
    "studio:catalog_upload": "POST only (GET redirects to the catalog)",
    "studio:catalog_run_start": "POST only (GET redirects to the catalog)",
    "studio:schedule_create": "POST only (GET redirects to the catalog)",
    "studio:schedule_update": "POST only (GET redirects to the catalog)",
    "studio:schedule_delete": "POST only",
    "studio:catalog_run_pause": "POST only",
    "studio:catalog_run_resume": "POST only",
    "studio:catalog_run_cancel": "POST only",
    "studio:catalog_run_export": "POST only",
}


@pytest.fixture
def world(owner: Persona) -> World:
    base = BaseModel.objects.create(name="perf-base", family="tiny", status=BuildStatus.READY)
    category = Category.objects.create(
        organization=owner.org, slug="mugs", name="Mugs", base_model=base
    )
    version = ModelVersion.objects.create(
        organization=owner.org,
        category=category,
        base=base,
        kind=VersionKind.LORA,
        artifact_uri="test://perf",
        sha256="1" * 64,
    )
    template = prompt_template_create(
        actor=owner.principal, application="perf", text="a {colour} mug"
    )
    catalog = catalog_create(actor=owner.principal, slug="spring", name="Spring")
    return World(
        owner=owner,
        base=base,
        category=category,
        version=version,
        template=template,
        catalog=catalog,
    )


def _client(name: str, owner: Persona) -> Client:
    if name.startswith("studio:"):
        client = Client()
        client.force_login(owner.user)
        return client
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {owner.api_key}")
    return api


def _read(client: Client, url: str) -> tuple[Any, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code, response.content[:500])
    return response, [q["sql"] for q in captured.captured_queries]


def _listing(queries: list[str]) -> str:
    return "\n".join(f"  {n:3}. {sql[:300]}" for n, sql in enumerate(queries, 1))


@pytest.mark.parametrize("name", sorted(CASES))
def test_query_count_does_not_grow_with_the_page(name: str, world: World) -> None:
    case = CASES[name]
    client = _client(name, world.owner)
    url = reverse(name, kwargs=case.add(world, SMALL)) + case.query
    client.get(url)  # once-a-minute writes (an API key's last use) and session set-up
    small, small_queries = _read(client, url)
    case.add(world, LARGE - SMALL)
    large, large_queries = _read(client, url)
    assert len(large_queries) == len(small_queries), (
        f"{url}: {len(small_queries)} queries for {SMALL} rows, {len(large_queries)} for "
        f"{LARGE}\n--- {SMALL} rows:\n{_listing(small_queries)}\n"
        f"--- {LARGE} rows:\n{_listing(large_queries)}"
    )
    if case.grows:  # the rows added are on the page, so the count above measured them
        assert len(large.content) > len(small.content), url


def _shape(route: str) -> str:
    """A route with its parameters blanked: ``api/v1/generations/{}``."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", route.strip("/"))


def _schema_list_routes() -> set[str]:
    """The API routes whose GET answers a list (an array, or a page with ``results``)."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    names = {_shape(r.route): r.name for r in all_routes()}
    found = set()
    for path, operations in schema["paths"].items():
        ok = (operations.get("get") or {}).get("responses", {}).get("200", {})
        body = ok.get("content", {}).get("application/json", {}).get("schema", {})
        if "$ref" in body:
            body = components[body["$ref"].rsplit("/", 1)[-1]]
        results = body.get("properties", {}).get("results", {})
        if body.get("type") == "array" or results.get("type") == "array":
            found.add(names[_shape(path)])
    return found


def test_every_list_route_has_a_query_count_case() -> None:
    routes = {r.name for r in all_routes() if r.area in ("api", "studio")}
    unclassified = sorted(routes - CASES.keys() - NOT_LISTS.keys())
    assert not unclassified, (
        f"give these routes a query-count case (or a NOT_LISTS reason): {unclassified}"
    )
    assert not (CASES.keys() | NOT_LISTS.keys()) - routes, "cases for routes that are gone"
    assert not CASES.keys() & NOT_LISTS.keys()
    lists = _schema_list_routes()
    assert lists, "the schema names no list at all: the detection above is broken"
    assert not lists - CASES.keys(), f"lists without a case: {sorted(lists - CASES.keys())}"
