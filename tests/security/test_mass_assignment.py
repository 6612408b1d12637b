"""Mass assignment and cross-tenant references: every create and update route of the API (found in
the URLconf) is sent a valid body plus fields that would set ownership or privileges
(``organization``, ``team``, ``status``, ``created_by``, ``is_staff``, …). JSON routes refuse them
by name (400 "Unknown field.", nothing written); the three multipart uploads ignore them (the row
belongs to the sender, pending, created by them). And a body that names another organization's
object (its team, category, version, template, catalog) is refused as if it did not exist.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from catalog.models import CatalogImport
from generation.models import GenerationJob, ImageReview, Upload
from models_registry.models import Alias
from tenants.roles import Action
from training.models import TrainingJob, TrainingStatus

from .conftest import World, png
from .routes import Route, all_routes

pytestmark = pytest.mark.django_db

# Fields a client must never set. ``team`` is declared where a key, webhook or quota may be for a
# team of one's own; naming another organization's team is checked below.
HOSTILE = {
    "organization": 1,
    "organization_id": 1,
    "team": 1,
    "status": "succeeded",
    "created_by": 1,
    "created_by_id": 1,
    "is_staff": True,
    "is_superuser": True,
    "role": "owner",
    "id": 1,
    "created_at": "2000-01-01T00:00:00Z",
}
DECLARES_TEAM = {"v1:api-key-list", "v1:webhook-list", "v1:quotas"}


@dataclass(frozen=True)
class Write:
    body: Callable[[World], dict[str, Any]]
    kwargs: Callable[[World], dict[str, Any]] = lambda w: {}
    multipart: bool = False


def _training_body(w: World) -> dict[str, Any]:
    return {
        "category": w.b_category.slug,
        "rare_token": "sks",
        "class_prompt": "a shoe",
        "params": '{"max_steps": 20}',
        "images": [SimpleUploadedFile(f"s{i}.png", png(colour=(i, 9, 9))) for i in range(3)],
    }


def _upload_body(w: World) -> dict[str, Any]:
    return {"file": SimpleUploadedFile("shoe.png", png(size=(64, 64))), "kind": "image"}


def _import_body(w: World) -> dict[str, Any]:
    csv = io.BytesIO(b"sku,name,category\nG-1,Shoe,globex-shoes\n")
    csv.name = "globex.csv"
    return {"file": csv}


# (url name, method) → a body that succeeds for B. A new create or update route must get one.
WRITES: dict[tuple[str, str], Write] = {
    ("v1:organization", "patch"): Write(lambda w: {"api_key_max_lifetime_days": 30}),
    ("v1:quotas", "put"): Write(lambda w: {"images_per_day": 10, "gpu_seconds_per_month": None}),
    ("v1:team-list", "post"): Write(lambda w: {"name": "Globex red", "slug": "red"}),
    ("v1:api-key-list", "post"): Write(
        lambda w: {
            "name": "ci",
            "scopes": [Action.VIEW],
            "expires_at": (timezone.now() + timedelta(days=7)).isoformat(),
        }
    ),
    ("v1:webhook-list", "post"): Write(
        lambda w: {"url": "https://globex-hooks.example.com/", "events": ["job.failed"]}
    ),
    ("v1:category-rubric", "put"): Write(
        lambda w: {"questions": [], "pass_threshold": 0.5}, lambda w: {"slug": w.b_category.slug}
    ),
    ("v1:quality-settings", "patch"): Write(lambda w: {"clip_enabled": False}),
    ("v1:template-list", "post"): Write(lambda w: {"application": "globex-new", "text": "a {x}"}),
    ("v1:template-detail", "put"): Write(
        lambda w: {"text": "a {item}, v2"}, lambda w: {"application": w.b_template.application}
    ),
    ("v1:template-detail", "patch"): Write(
        lambda w: {"text": "a {item}, v3"}, lambda w: {"application": w.b_template.application}
    ),
    ("v1:generation-list", "post"): Write(lambda w: {"prompt": "a shoe", "model": "tiny"}),
    ("v1:category-list", "post"): Write(lambda w: {"slug": "globex-hats", "name": "Hats"}),
    ("v1:category-detail", "patch"): Write(
        lambda w: {"name": "Shoes"}, lambda w: {"slug": w.b_category.slug}
    ),
    ("v1:training-list", "post"): Write(_training_body, multipart=True),
    ("v1:upload-list", "post"): Write(_upload_body, multipart=True),
    ("v1:catalog-list", "post"): Write(lambda w: {"slug": "globex-winter"}),
    ("v1:catalog-import-file", "post"): Write(
        _import_body, lambda w: {"slug": w.b_catalog.slug}, multipart=True
    ),
    ("v1:catalog-run-list", "post"): Write(lambda w: {"catalog": w.b_catalog.slug, "mode": "all"}),
    ("v1:schedule-list", "post"): Write(
        lambda w: {"catalog": w.b_catalog.slug, "cron": "0 6 * * 1"}
    ),
    ("v1:schedule-detail", "patch"): Write(
        lambda w: {"enabled": False}, lambda w: {"pk": w.b_schedule.pk}
    ),
}
# Uploads on an object that create a row (the other POSTs on an object are actions on it).
CREATING_ACTIONS = {"v1:catalog-import-file"}
# POSTs that create nothing: an upload to look at (tests/provenance checks it writes nothing).
READ_ONLY_POSTS = {"v1:provenance-verify"}


def _writes() -> list[tuple[Route, str]]:
    found = []
    for route in all_routes():
        if route.area != "api":
            continue
        for method in route.methods:
            creates = method == "post" and (not route.params or route.name in CREATING_ACTIONS)
            creates = creates and route.name not in READ_ONLY_POSTS
            if creates or method in ("put", "patch"):
                found.append((route, method))
    return found


def _snapshot() -> dict[str, int]:
    """Rows of every tenant model, and who is staff: what a write could have changed."""
    counts = {
        model._meta.label: model.objects.count()
        for model in apps.get_models()
        if any(f.name == "organization" for f in model._meta.get_fields())
    }
    users = get_user_model().objects
    counts["staff"] = users.filter(is_staff=True).count() + users.filter(is_superuser=True).count()
    return counts


def _client(world: World) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.outsider.api_key}")
    return client


def _send(client: APIClient, method: str, url: str, body: dict, *, multipart: bool) -> Any:
    return getattr(client, method)(url, body, format="multipart" if multipart else "json")


def test_every_create_and_update_route_has_a_body_here():
    writes = _writes()
    missing = [f"{m.upper()} {r.route} ({r.name})" for r, m in writes if (r.name, m) not in WRITES]
    assert not missing, (
        "Add a body that succeeds for organization B to WRITES in "
        f"{__file__} for: {', '.join(missing)}"
    )
    assert len(writes) >= 18


def test_ownership_and_privilege_fields_are_refused_by_name_or_ignored(world):
    client = _client(world)
    refused, ignored = [], []
    for route, method in _writes():
        write = WRITES[(route.name, method)]
        url = reverse(route.name, kwargs=write.kwargs(world))
        hostile = {
            k: v for k, v in HOSTILE.items() if not (k == "team" and route.name in DECLARES_TEAM)
        }
        # The body alone succeeds (undone): the hostile fields are what a refusal is about.
        savepoint = transaction.savepoint()
        alone = _send(client, method, url, write.body(world), multipart=write.multipart)
        transaction.savepoint_rollback(savepoint)
        assert alone.status_code < 300, (method, url, alone.content)

        before = _snapshot()
        savepoint = transaction.savepoint()
        body = {**write.body(world), **hostile}
        response = _send(client, method, url, body, multipart=write.multipart)
        after = _snapshot()  # taken before the rollback that keeps the next route's start clean
        transaction.savepoint_rollback(savepoint)
        if write.multipart:  # checked row by row in the next test
            assert response.status_code < 300, (method, url, response.content)
            ignored.append(route.name)
            continue
        assert response.status_code == 400, (method, url, response.content)
        fields = response.json()["error"]["fields"]
        unknown = {k: fields.get(k) for k in hostile}
        assert unknown == dict.fromkeys(hostile, "Unknown field."), (method, url)
        assert after == before, (method, url)
        refused.append(route.name)
    assert set(ignored) == {"v1:training-list", "v1:catalog-import-file", "v1:upload-list"}
    assert len(refused) >= 16


def test_the_multipart_uploads_ignore_ownership_fields_and_keep_the_senders(world):
    client = _client(world)
    b = world.outsider
    training = client.post(
        "/api/v1/trainings",
        {**_training_body(world), **HOSTILE, "organization": world.owner.org.pk},
        format="multipart",
    )
    assert training.status_code == 202, training.content
    job = TrainingJob.objects.get(pk=training.json()["id"])
    assert (job.organization, job.team, job.created_by) == (b.org, b.team, None)
    assert job.created_by_api_key.organization == b.org
    assert job.status == TrainingStatus.PENDING and job.category == world.b_category
    imported = client.post(
        f"/api/v1/catalogs/{world.b_catalog.slug}/import",
        {**_import_body(world), **HOSTILE, "organization": world.owner.org.pk},
        format="multipart",
    )
    assert imported.status_code == 201, imported.content
    record = CatalogImport.objects.get(pk=imported.json()["id"])
    assert record.organization == b.org and record.catalog == world.b_catalog
    uploaded = client.post(
        "/api/v1/uploads",
        {**_upload_body(world), **HOSTILE, "organization": world.owner.org.pk},
        format="multipart",
    )
    assert uploaded.status_code == 201, uploaded.content
    upload = Upload.objects.get(pk=uploaded.json()["id"])
    assert (upload.organization, upload.created_by) == (b.org, None)
    assert upload.created_by_api_key.organization == b.org


def test_a_studio_form_with_ownership_fields_makes_the_job_in_the_senders_org(world, client):
    client.force_login(world.outsider.user)
    before = GenerationJob.objects.filter(organization=world.owner.org).count()
    response = client.post(
        "/studio/generate/", {"target": "model:tiny", "prompt": "a shoe", **HOSTILE}
    )
    assert response.status_code == 302, response.content[:500]
    job = GenerationJob.objects.filter(organization=world.outsider.org).get()
    assert job.created_by == world.outsider.user and job.status == "pending"
    assert GenerationJob.objects.filter(organization=world.owner.org).count() == before
    assert not get_user_model().objects.filter(is_staff=True).exists()


def test_a_studio_form_naming_another_orgs_category_or_template_is_refused(world, client):
    client.force_login(world.outsider.user)
    before = _snapshot()
    for body in (
        {"target": f"category:{world.category.slug}", "prompt": "a shoe"},
        {"template": world.template.application, "var_item": "x"},
    ):
        response = client.post("/studio/generate/", body)
        assert response.status_code == 400, body
        assert not world.leaks(response.content.replace(b"acme-", b""))
    assert _snapshot() == before


# --- bodies naming another organization's objects --------------------------------------------


# (method, url, body naming A's object, the same naming nothing, the field refused or "").
CROSS_REFERENCES: list[tuple[str, str, Callable[[World, bool], dict[str, Any]], str]] = [
    (
        "post",
        "/api/v1/api-keys",
        lambda w, a: {
            "name": "x",
            "team": w.team.pk if a else 987_654_321,
            "scopes": [Action.VIEW],
            "expires_at": (timezone.now() + timedelta(days=1)).isoformat(),
        },
        "",
    ),
    (
        "post",
        "/api/v1/webhooks",
        lambda w, a: {
            "url": "https://x.example.com/",
            "events": ["job.failed"],
            "team": w.team.pk if a else 987_654_321,
        },
        "",
    ),
    (
        "put",
        "/api/v1/quotas",
        lambda w, a: {
            "team": w.team.pk if a else 987_654_321,
            "images_per_day": 0,
            "gpu_seconds_per_month": None,
        },
        "",
    ),
    (
        "post",
        "/api/v1/generations",
        lambda w, a: {"prompt": "p", "category": w.category.slug if a else "zz-none"},
        "category",
    ),
    (
        "post",
        "/api/v1/generations",
        lambda w, a: {"prompt": "p", "model": f"version:{w.version.pk if a else 987_654_321}"},
        "model",
    ),
    (
        "post",
        "/api/v1/generations",
        lambda w, a: {"template": w.template.application if a else "zz-none", "variables": {}},
        "template",
    ),
    (
        "post",
        "/api/v1/catalog-runs",
        lambda w, a: {"catalog": w.catalog.slug if a else "zz-none", "mode": "all"},
        "",
    ),
    (
        "post",
        "/api/v1/schedules",
        lambda w, a: {"catalog": w.catalog.slug if a else "zz-none", "cron": "0 6 * * 1"},
        "",
    ),
    (
        "post",
        "/api/v1/catalogs",
        lambda w, a: {"slug": "globex-x", "default_template": "acme-hero" if a else "zz-none"},
        "default_template",
    ),
    (
        "post",
        "/api/v1/categories/globex-shoes/promote",
        lambda w, a: {"version": w.version.pk if a else 987_654_321},
        "",
    ),
]


def _blanked(response: Any, body: dict[str, Any]) -> bytes:
    """The response with the names and ids the body gave blanked out (echoing them is fine)."""
    text = response.content
    for value in body.values():
        if isinstance(value, str | int) and not isinstance(value, bool):
            for token in {str(value), str(value).removeprefix("version:")}:
                edge = rb"(?<![\w-])" + re.escape(token.encode()) + rb"(?![\w-])"
                text = re.sub(edge, b"<value>", text)
    return text


@pytest.mark.parametrize(
    ("method", "url", "body", "field"),
    CROSS_REFERENCES,
    ids=[f"{m} {u} {f}".strip() for m, u, _b, f in CROSS_REFERENCES],
)
def test_a_body_naming_another_orgs_object_is_refused_as_if_it_did_not_exist(
    world, method, url, body, field
):
    """The same answer as for a name that exists nowhere: a 404, or a 400 naming the field."""
    client = _client(world)
    before = _snapshot()
    theirs_body, nothing_body = body(world, True), body(world, False)
    theirs = getattr(client, method)(url, theirs_body, format="json")
    nothing = getattr(client, method)(url, nothing_body, format="json")
    assert theirs.status_code in (400, 404), theirs.content
    assert theirs.status_code == nothing.status_code
    assert _blanked(theirs, theirs_body) == _blanked(nothing, nothing_body)
    if theirs.status_code == 400:
        assert field in theirs.json()["error"]["fields"], theirs.json()
    assert not world.leaks(_blanked(theirs, theirs_body))
    assert _snapshot() == before


def test_a_category_default_template_naming_another_orgs_template_is_no_oracle(world):
    """A category's ``default_template`` is stored as given text (no code reads it to resolve a
    template), so another organization's application is accepted exactly like a name of none."""
    client = _client(world)
    made = [
        client.post(
            "/api/v1/categories",
            {"slug": f"globex-{n}", "name": "X", "default_template": application},
            format="json",
        )
        for n, application in enumerate([world.template.application, "zz-none"])
    ]
    assert [r.status_code for r in made] == [201, 201]
    shapes = [{k for k, v in r.json().items() if v not in (None, "")} for r in made]
    assert shapes[0] == shapes[1]


def test_studio_review_bulk_with_another_orgs_image_ids_changes_nothing(world, client):
    client.force_login(world.outsider.user)
    client.post("/studio/review/bulk/", {"images": [str(world.image.pk)], "decision": "approved"})
    assert not ImageReview.objects.filter(image=world.image).exists()


def test_studio_promote_of_another_orgs_version_changes_nothing(world, client):
    client.force_login(world.outsider.user)
    response = client.post(
        f"/studio/models/{world.b_category.slug}/promote/",
        {"version": str(world.version.pk), "alias": "production"},
    )
    assert response.status_code in (302, 400, 404)
    assert not Alias.objects.filter(category=world.b_category).exists()
    assert Alias.objects.get(category=world.category, name="production").version == world.version
