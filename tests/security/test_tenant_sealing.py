"""Tenant sealing on every route: the owner of organization B, with an API key holding every scope
and with a studio session, tries every URL pattern of the API and the studio (read from the
URLconf, so a new endpoint is covered the day it is added) against organization A's objects.

- A route with an object in its path answers B exactly as it answers for an object that does not
  exist: a 404 (never A's data, never a 403 that would say "it exists, but not for you").
- A route without one (a list, a dashboard) shows B nothing of A's, also when its query names A's
  objects.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from .conftest import World
from .routes import Route, all_routes

pytestmark = pytest.mark.django_db

# (area, resource, path parameter) → the value naming A's object of that kind.
FILLERS: dict[tuple[str, str, str], Callable[[World], Any]] = {
    ("api", "teams", "pk"): lambda w: w.team.pk,
    ("api", "api-keys", "pk"): lambda w: w.api_key.pk,
    ("api", "audit-events", "pk"): lambda w: w.audit_event.pk,
    ("api", "webhooks", "pk"): lambda w: w.endpoint.pk,
    ("api", "webhook-deliveries", "pk"): lambda w: w.delivery.pk,
    ("api", "categories", "slug"): lambda w: w.category.slug,
    ("api", "templates", "application"): lambda w: w.template.application,
    ("api", "generations", "pk"): lambda w: w.job.pk,
    ("api", "images", "pk"): lambda w: w.image.pk,
    ("api", "uploads", "pk"): lambda w: w.upload.pk,
    ("api", "model-versions", "pk"): lambda w: w.version.pk,
    ("api", "trainings", "pk"): lambda w: w.training.pk,
    ("api", "catalogs", "slug"): lambda w: w.catalog.slug,
    ("api", "catalog-imports", "pk"): lambda w: w.catalog_import.pk,
    ("api", "catalog-runs", "pk"): lambda w: w.run.pk,
    ("api", "schedules", "pk"): lambda w: w.schedule.pk,
    ("studio", "jobs", "job_id"): lambda w: w.job.pk,
    ("studio", "review", "image_id"): lambda w: w.image.pk,
    ("studio", "images", "image_id"): lambda w: w.image.pk,
    ("studio", "models", "slug"): lambda w: w.category.slug,
    ("studio", "templates", "application"): lambda w: w.template.application,
    ("studio", "training", "job_id"): lambda w: w.training.pk,
    ("studio", "training", "image_id"): lambda w: w.validation_image.pk,
    ("studio", "catalogs", "slug"): lambda w: w.catalog.slug,
    ("studio", "schedules", "schedule_id"): lambda w: w.schedule.pk,
    ("studio", "catalog-runs", "run_id"): lambda w: w.run.pk,
}
# Path parameters that do not name an organization's object, and why.
NOT_TENANT_OBJECTS = {
    ("api", "base-models", "name"): "base models are shared by every organization",
    ("api", "images", "token"): "a signed download link is its own credential: test_download_links",
}
# Query parameters a list might filter by, set to A's objects (and, to compare, to missing ones).
QUERY: dict[str, Callable[[World], Any]] = {
    "category": lambda w: w.category.slug,
    "template": lambda w: w.template.application,
    "catalog": lambda w: w.catalog.slug,
    "model_version": lambda w: w.version.pk,
    "job": lambda w: w.job.pk,
    "object_id": lambda w: w.job.pk,
}
REDIRECTS = (301, 302, 303, 307, 308)
_CSRF = re.compile(rb'name="csrfmiddlewaretoken" value="[^"]+"|csrftoken=[^;]+')


def _missing_like(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return uuid.uuid4()
    if isinstance(value, int):
        return 987_654_321
    return "zz-no-such-thing"


def _fill(route: Route, world: World) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(A's path kwargs, the same for missing objects); None for a route on no tenant object."""
    ours, missing = {}, {}
    for param in route.params:
        key = (route.area, route.resource, param)
        if key in NOT_TENANT_OBJECTS:
            return None
        if key not in FILLERS:
            pytest.fail(
                f"{route.route} ({route.name}) has a path parameter '{param}' this test cannot "
                f"fill: add FILLERS[{key!r}] in {__file__} naming organization A's object of "
                f"that kind (create one in tests/security/conftest.py if there is none), or, if "
                f"it names nothing an organization owns, NOT_TENANT_OBJECTS[{key!r}] with why."
            )
        ours[param] = FILLERS[key](world)
        missing[param] = _missing_like(ours[param])
    return ours, missing


def _send(client: Client, method: str, url: str, *, studio: bool) -> Any:
    if method in ("get", "delete"):
        return getattr(client, method)(url)
    if studio:
        return getattr(client, method)(url, {})
    return getattr(client, method)(url, {}, format="json")


def _normalized(response: Any, values: list[Any]) -> bytes:
    """The body and redirect with the ids asked for blanked out (a short number is blanked only
    inside a path: "1" is everywhere in a page), so two answers compare equal when they differ
    only by what was asked."""
    text = (
        _CSRF.sub(b"<csrf>", response.content)
        + f"\nLocation: {response.get('Location', '')}".encode()
    )
    for value in values:
        value = str(value)
        if len(value) >= 6:
            text = text.replace(value.encode(), b"<value>")
        else:
            text = re.sub(
                rb"/" + re.escape(value.encode()) + rb"(?=[/?\"'\s]|$)", b"/<value>", text
            )
    return text


def _api_client(world: World) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.outsider.api_key}")
    return client


def _studio_client(world: World) -> Client:
    client = Client()
    client.force_login(world.outsider.user)
    return client


def _object_route_failures(route: Route, world: World, client_for: Callable[[], Any]) -> list[str]:
    filled = _fill(route, world)
    if filled is None:
        return []
    ours, missing = filled
    studio = route.area == "studio"
    failures: list[str] = []
    answered_404 = False
    for method in route.methods:
        url_a = reverse(route.name, kwargs=ours)
        url_missing = reverse(route.name, kwargs=missing)
        theirs = _send(client_for(), method, url_a, studio=studio)
        absent = _send(client_for(), method, url_missing, studio=studio)
        where = f"{method.upper()} {url_a} ({route.route})"
        answered_404 |= theirs.status_code == 404
        # A function view may answer a method it does not take before looking anything up (a
        # 405, or a redirect to the page that does): fine when a missing object gets the same.
        before_lookup = route.probed and (
            theirs.status_code == 405 or theirs.status_code in REDIRECTS
        )
        if theirs.status_code != 404 and not before_lookup:
            failures.append(f"{where}: {theirs.status_code}, not 404: {theirs.content[:300]!r}")
            continue
        if theirs.status_code != absent.status_code or _normalized(
            theirs, list(ours.values())
        ) != _normalized(absent, list(missing.values())):
            failures.append(
                f"{where}: answers differently for A's object ({theirs.status_code}) and a "
                f"missing one ({absent.status_code}): {theirs.content[:300]!r}"
            )
        leaks = world.leaks(_normalized(theirs, list(ours.values())))
        if leaks:
            failures.append(f"{where}: the 404 mentions {leaks}")
    if not answered_404:
        failures.append(f"{route.route}: no method answered 404 for A's object")
    return failures


def _list_route_failures(route: Route, world: World, client_for: Callable[[], Any]) -> list[str]:
    if "get" not in route.methods:
        return []
    url = reverse(route.name)
    plain = client_for().get(url)
    failures: list[str] = []
    # B may see the page (an answer that hides everything proves nothing), bar the JSON 404 and
    # the studio's sign-in pages, which redirect or refuse GET.
    expected = (200, 302, 405) if route.probed else (200,)
    if plain.status_code not in expected and route.name != "api-not-found":
        failures.append(f"GET {url}: {plain.status_code}, not {expected}")
    if leaks := world.leaks(plain.content):
        failures.append(f"GET {url}: shows A's {leaks}: {plain.content[:300]!r}")
    query_a = {name: fill(world) for name, fill in QUERY.items()}
    query_missing = {name: _missing_like(value) for name, value in query_a.items()}
    named = client_for().get(url, query_a)
    absent = client_for().get(url, query_missing)
    normalized = _normalized(named, list(query_a.values()))
    if named.status_code != absent.status_code:
        failures.append(
            f"GET {url}?<A's objects>: {named.status_code}, but {absent.status_code} for "
            "missing ones (an existence oracle)"
        )
    if leaks := world.leaks(normalized):
        failures.append(f"GET {url}?<A's objects>: shows A's {leaks}: {named.content[:300]!r}")
    return failures


def _walk(area: str, world: World, client_for: Callable[[], Any]) -> tuple[int, list[str]]:
    routes = [r for r in all_routes() if r.area == area]
    failures: list[str] = []
    for route in routes:
        check = _object_route_failures if route.params else _list_route_failures
        failures += check(route, world, client_for)
    return len(routes), failures


def test_outsider_with_every_scope_gets_404_on_every_api_route_for_another_orgs_objects(world):
    count, failures = _walk("api", world, lambda: _api_client(world))
    assert count >= 55
    assert not failures, f"{len(failures)} leaks:\n" + "\n".join(failures)


def test_outsider_owner_session_gets_404_on_every_studio_page_for_another_orgs_objects(world):
    count, failures = _walk("studio", world, lambda: _studio_client(world))
    assert count >= 40
    assert not failures, f"{len(failures)} leaks:\n" + "\n".join(failures)


def test_the_schema_docs_and_unknown_api_paths_show_nothing_of_another_org(world):
    count, failures = _walk("api-meta", world, lambda: _api_client(world))
    assert count == 3
    assert not failures, "\n".join(failures)


def test_a_route_with_a_parameter_nobody_can_fill_fails_with_how_to_fix_it(world):
    """The guard behind "a new endpoint is covered automatically"."""
    new = Route(
        name="v1:widget-detail",
        route="api/v1/widgets/<pk>",
        area="api",
        resource="widgets",
        params=("pk",),
        methods=("get",),
        probed=False,
    )
    with pytest.raises(pytest.fail.Exception, match=r"add FILLERS\[\('api', 'widgets', 'pk'\)\]"):
        _fill(new, world)


def test_outsider_cannot_switch_the_studio_to_another_org(world):
    client = _studio_client(world)
    theirs = client.post("/studio/organization/", {"organization": world.owner.org.slug})
    missing = client.post("/studio/organization/", {"organization": "zz-no-such-org"})
    assert theirs.status_code == missing.status_code == 404
    home = client.get("/studio/")
    assert home.status_code == 200 and not world.leaks(home.content)
