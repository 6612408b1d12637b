"""Every studio view, for every role: allowed roles get the page (or their action's result),
others a 403 page; anonymous visitors are sent to sign in; an outsider's copy of an object URL
is a 404, the same as a missing object."""

from __future__ import annotations

import html
import string
import uuid
from functools import cached_property
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from catalog.imports import catalog_import
from catalog.runs import catalog_run_create
from catalog.schedules import catalog_schedule_create
from catalog.services import catalog_create
from tenants.roles import ROLE_ACTIONS, Action, Role

pytestmark = pytest.mark.django_db

ROLES = [Role.OWNER, Role.ADMIN, Role.EDITOR, Role.REVIEWER, Role.VIEWER]

# (method, url template, action). {job}, {image}, {slug}, {catalog}, {product}, {run} and
# {schedule} are filled from the fixtures.
ROUTES = [
    ("get", "/studio/", Action.VIEW),
    ("get", "/studio/generate/", Action.GENERATE),
    ("get", "/studio/generate/variables/", Action.GENERATE),
    ("get", "/studio/jobs/", Action.VIEW),
    ("get", "/studio/jobs/{job}/", Action.VIEW),
    ("get", "/studio/jobs/{job}/status/", Action.VIEW),
    ("post", "/studio/jobs/{job}/cancel/", Action.GENERATE),
    ("get", "/studio/review/", Action.REVIEW),
    ("post", "/studio/review/{image}/", Action.REVIEW),
    ("post", "/studio/review/bulk/", Action.REVIEW),
    ("get", "/studio/review/report/", Action.VIEW),
    ("get", "/studio/gallery/", Action.VIEW),
    ("get", "/studio/images/{image}/", Action.VIEW),
    ("get", "/studio/images/{image}/file/", Action.VIEW),
    ("get", "/studio/models/", Action.VIEW),
    ("get", "/studio/models/{slug}/", Action.VIEW),
    ("post", "/studio/models/{slug}/promote/", Action.MANAGE_MODELS),
    ("post", "/studio/models/{slug}/rollback/", Action.MANAGE_MODELS),
    ("get", "/studio/models/{slug}/rubric/", Action.VIEW),
    ("post", "/studio/models/{slug}/rubric/", Action.MANAGE_MODELS),
    ("get", "/studio/templates/", Action.VIEW),
    ("get", "/studio/quality/", Action.VIEW),
    ("post", "/studio/quality/", Action.MANAGE_MODELS),
    ("get", "/studio/training/", Action.VIEW),
    ("get", "/studio/catalogs/", Action.VIEW),
    ("post", "/studio/catalogs/", Action.TRAIN),
    ("get", "/studio/catalogs/{catalog}/", Action.VIEW),
    ("post", "/studio/catalogs/{catalog}/import/", Action.TRAIN),
    ("post", "/studio/catalogs/{catalog}/runs/", Action.TRAIN),
    ("post", "/studio/catalogs/{catalog}/schedules/", Action.TRAIN),
    ("post", "/studio/schedules/{schedule}/", Action.TRAIN),
    ("post", "/studio/schedules/{schedule}/delete/", Action.TRAIN),
    ("get", "/studio/catalog-runs/{run}/", Action.VIEW),
    ("get", "/studio/catalog-runs/{run}/status/", Action.VIEW),
    ("post", "/studio/catalog-runs/{run}/pause/", Action.TRAIN),
    ("post", "/studio/catalog-runs/{run}/resume/", Action.TRAIN),
    ("post", "/studio/catalog-runs/{run}/cancel/", Action.TRAIN),
    ("post", "/studio/catalog-runs/{run}/export/", Action.VIEW),
    ("get", "/studio/review/?run={run}", Action.REVIEW),
    ("get", "/studio/review/?product={product}", Action.REVIEW),
]
OBJECT_ROUTES = [r for r in ROUTES if "{" in r[1]]


class Objects:
    """One of each object the routes name, in organization A, made when a route first needs it:
    a job with its images, a category, and a catalog with one product, a (pending) run and a
    schedule."""

    def __init__(self, job: Any, category: Any, owner: Any) -> None:
        self.job, self.category, self.owner = job, category, owner

    @cached_property
    def catalog(self) -> Any:
        catalog = catalog_create(actor=self.owner, slug="spring")
        catalog_import(actor=self.owner, catalog=catalog, stream=_products_csv(), file_name="p.csv")
        return catalog

    @cached_property
    def product(self) -> Any:
        return self.catalog.products.get()

    @cached_property
    def run(self) -> Any:
        return catalog_run_create(actor=self.owner, catalog=self.catalog, mode="all")

    @cached_property
    def schedule(self) -> Any:
        return catalog_schedule_create(actor=self.owner, catalog=self.catalog, interval_minutes=60)

    def url(self, template: str) -> str:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
        values = {
            "job": lambda: self.job.pk,
            "image": lambda: self.job.images.order_by("index").first().pk,
            "slug": lambda: self.category.slug,
            "catalog": lambda: self.catalog.slug,
            "product": lambda: self.product.pk,
            "run": lambda: self.run.pk,
            "schedule": lambda: self.schedule.pk,
        }
        return template.format(**{name: values[name]() for name in names})


@pytest.fixture
def objects(job_a, category_a, persona, sent) -> Objects:  # type: ignore[no-untyped-def]
    return Objects(job_a, category_a, persona(Role.OWNER).principal)


def _products_csv() -> SimpleUploadedFile:
    return SimpleUploadedFile("products.csv", b"sku,name,category\nMUG-1,Red mug,mugs\n")


def _body(method: str, url: str, objects: Objects) -> dict[str, Any]:
    if method == "get":
        return {}  # a GET's data would replace the query string the URL carries
    if url == "/studio/catalogs/":
        return {"slug": "autumn"}
    if url.endswith("/import/"):
        return {"file": _products_csv()}
    if url.endswith("/runs/"):
        return {"mode": "all"}
    if url.endswith("/schedules/"):
        return {"mode": "missing", "interval_minutes": "30"}
    if "/studio/schedules/" in url:
        return {"enabled": "off"}
    if "/review/bulk/" in url:
        return {"decision": "approved"}
    if "/review/" in url:
        return {"decision": "approved"}
    if "/rubric/" in url:
        return {"rows": "0", "pass_threshold": "0.75"}
    if "/promote/" in url:
        return {"version": str(objects.category.versions.first().pk), "alias": "production"}
    return {}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "template", "action"), ROUTES, ids=[r[1] for r in ROUTES])
def test_each_view_allows_exactly_the_roles_with_its_action(
    persona, studio_client, objects, role, method, template, action
):
    client = studio_client(persona(role))
    url = objects.url(template)
    response = getattr(client, method)(url, _body(method, url, objects))
    if action in ROLE_ACTIONS[role]:
        assert response.status_code in (200, 302), (url, response.status_code)
    else:
        assert response.status_code == 403, (url, response.status_code)
        assert f"does not allow '{action}'" in html.unescape(response.content.decode())


@pytest.mark.parametrize(("method", "template", "action"), ROUTES, ids=[r[1] for r in ROUTES])
def test_anonymous_visitor_is_sent_to_sign_in(studio_client, objects, method, template, action):
    url = objects.url(template)
    response = getattr(studio_client(None), method)(url)
    assert response.status_code == 302
    assert response.url.startswith("/studio/login/?next=")


@pytest.mark.parametrize(
    ("method", "template", "action"), OBJECT_ROUTES, ids=[r[1] for r in OBJECT_ROUTES]
)
def test_outsider_gets_404_for_another_orgs_objects(
    outsider, studio_client, objects, method, template, action
):
    url = objects.url(template)
    response = getattr(studio_client(outsider), method)(url, _body(method, url, objects))
    assert response.status_code == 404


@pytest.mark.parametrize(
    "template",
    [
        "/studio/jobs/{id}/",
        "/studio/images/{id}/",
        "/studio/images/{id}/file/",
        "/studio/catalogs/{id}/",
        "/studio/catalog-runs/{id}/",
        "/studio/review/?run={id}",
    ],
)
def test_missing_object_is_the_same_404_as_another_orgs(persona, studio_client, template):
    client = studio_client(persona(Role.OWNER))
    assert client.get(template.format(id=uuid.uuid4())).status_code == 404


def test_navigation_shows_only_what_the_role_may_do(persona, studio_client):
    everyone = {"Jobs", "Gallery", "Catalogs", "Training", "Models", "Quality"}
    expected = {
        Role.OWNER: everyone | {"Generate", "Review"},
        Role.EDITOR: everyone | {"Generate"},
        Role.REVIEWER: everyone | {"Review"},
        Role.VIEWER: everyone,
    }
    for role, labels in expected.items():
        page = studio_client(persona(role)).get("/studio/").content.decode()
        nav = page.split('<nav class="mainnav"', 1)[1].split("</nav>", 1)[0]
        for label in everyone | {"Generate", "Review"}:
            assert (f">{label}</a>" in nav) == (label in labels), (role, label)
