"""Every studio view, for every role: allowed roles get the page (or their action's result),
others a 403 page; anonymous visitors are sent to sign in; an outsider's copy of an object URL
is a 404, the same as a missing object."""

from __future__ import annotations

import html
import uuid

import pytest

from tenants.roles import ROLE_ACTIONS, Action, Role

pytestmark = pytest.mark.django_db

ROLES = [Role.OWNER, Role.ADMIN, Role.EDITOR, Role.REVIEWER, Role.VIEWER]

# (method, url template, action). {job}, {image}, {slug} are filled from the fixtures.
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
]
OBJECT_ROUTES = [r for r in ROUTES if "{" in r[1]]


def _url(template: str, job, category) -> str:  # type: ignore[no-untyped-def]
    image = job.images.order_by("index").first()
    return template.format(job=job.pk, image=image.pk, slug=category.slug)


def _body(url: str, category) -> dict[str, str]:  # type: ignore[no-untyped-def]
    if "/review/bulk/" in url:
        return {"decision": "approved"}
    if "/review/" in url:
        return {"decision": "approved"}
    if "/rubric/" in url:
        return {"rows": "0", "pass_threshold": "0.75"}
    if "/promote/" in url:
        return {"version": str(category.versions.first().pk), "alias": "production"}
    return {}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "template", "action"), ROUTES, ids=[r[1] for r in ROUTES])
def test_each_view_allows_exactly_the_roles_with_its_action(
    persona, studio_client, job_a, category_a, role, method, template, action
):
    client = studio_client(persona(role))
    url = _url(template, job_a, category_a)
    response = getattr(client, method)(url, _body(url, category_a))
    if action in ROLE_ACTIONS[role]:
        assert response.status_code in (200, 302), (url, response.status_code)
    else:
        assert response.status_code == 403, (url, response.status_code)
        assert f"does not allow '{action}'" in html.unescape(response.content.decode())


@pytest.mark.parametrize(("method", "template", "action"), ROUTES, ids=[r[1] for r in ROUTES])
def test_anonymous_visitor_is_sent_to_sign_in(
    studio_client, job_a, category_a, method, template, action
):
    url = _url(template, job_a, category_a)
    response = getattr(studio_client(None), method)(url)
    assert response.status_code == 302
    assert response.url.startswith("/studio/login/?next=")


@pytest.mark.parametrize(
    ("method", "template", "action"), OBJECT_ROUTES, ids=[r[1] for r in OBJECT_ROUTES]
)
def test_outsider_gets_404_for_another_orgs_objects(
    outsider, studio_client, job_a, category_a, method, template, action
):
    url = _url(template, job_a, category_a)
    response = getattr(studio_client(outsider), method)(url, _body(url, category_a))
    assert response.status_code == 404


@pytest.mark.parametrize(
    "template", ["/studio/jobs/{id}/", "/studio/images/{id}/", "/studio/images/{id}/file/"]
)
def test_missing_object_is_the_same_404_as_another_orgs(persona, studio_client, template):
    client = studio_client(persona(Role.OWNER))
    assert client.get(template.format(id=uuid.uuid4())).status_code == 404


def test_navigation_shows_only_what_the_role_may_do(persona, studio_client):
    everyone = {"Jobs", "Gallery", "Training", "Models", "Quality"}
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
