"""Studio pages of the quality gate: template and category rubrics (refused with the same
messages as the API), and tenant isolation."""

from __future__ import annotations

import html

import pytest

from generation.models import PromptTemplate
from generation.template_services import prompt_template_create
from models_registry.models import Category
from tests.generation.test_rubrics import BAD_RUBRICS, TEMPLATE

pytestmark = pytest.mark.django_db


def _rows(*items: dict) -> dict:
    data = {"rows": str(len(items) + 1), "pass_threshold": "0.8", "max_attempts": "3"}
    for n, item in enumerate(items):
        for key, value in item.items():
            data[f"q{n}-{key}"] = value
    data[f"q{len(items)}-question"] = ""  # an empty extra row is ignored
    return data


# A blank question is a blank row here (ignored); the others come back as the API words them.
@pytest.mark.parametrize(("rubric", "message"), [BAD_RUBRICS[0], *BAD_RUBRICS[2:4]])
def test_the_studio_refuses_the_same_rubrics_with_the_same_message(
    owner, studio_client, rubric, message
):
    prompt_template_create(actor=owner.principal, **TEMPLATE)
    item = rubric[0]
    row = {"question": item["question"], "judge": item["judge"], "check": item.get("check", "")}
    response = studio_client(owner).post("/studio/templates/shot/rubric/", _rows(row))
    assert response.status_code == 400
    assert message in html.unescape(response.content.decode())
    assert PromptTemplate.objects.filter(application="shot").count() == 1


def test_the_studio_saves_a_rubric_as_a_new_version(owner, studio_client):
    prompt_template_create(actor=owner.principal, **TEMPLATE)
    row = {
        "question": "Is the product {color}?",
        "judge": "check",
        "check": "colour",
        "weight": "2",
    }
    data = _rows(row) | {"base_version": "1"}
    response = studio_client(owner).post("/studio/templates/shot/rubric/", data)
    assert response.status_code == 302
    latest = PromptTemplate.objects.get(application="shot", version=2)
    assert latest.rubric == [
        {
            "question": "Is the product {color}?",
            "expected": True,
            "weight": 2.0,
            "judge": "check",
            "check": "colour",
        }
    ]
    assert latest.pass_threshold == 0.8
    page = studio_client(owner).get("/studio/templates/shot/rubric/").content.decode()
    assert "Is the product {color}?" in page and "v2" in page


def test_the_studio_threshold_outside_0_to_1_names_the_field(owner, studio_client):
    prompt_template_create(actor=owner.principal, **TEMPLATE)
    data = _rows() | {"pass_threshold": "7"}
    response = studio_client(owner).post("/studio/templates/shot/rubric/", data)
    assert response.status_code == 400
    assert "pass_threshold" in response.content.decode()


def test_studio_rubric_pages_of_another_org_are_404(owner, outsider, studio_client):
    Category.objects.create(organization=owner.org, slug="produce", name="Produce")
    prompt_template_create(actor=owner.principal, **TEMPLATE)
    client = studio_client(outsider)
    assert client.get("/studio/templates/shot/rubric/").status_code == 404
    assert client.get("/studio/models/produce/rubric/").status_code == 404
    assert client.post("/studio/models/produce/rubric/", _rows()).status_code == 404
