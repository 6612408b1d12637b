"""Rubrics: one validator behind the API and the studio (same refusals, naming the field), template
rubrics versioned with the template, category rubrics, the organization's optional judges, and
tenant isolation on each of them."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from generation.models import CategoryRubric, PromptTemplate
from generation.rubrics import fill_question, rubric_clean
from generation.template_services import prompt_template_create
from models_registry.models import Category
from tenants.models import AuditEvent

pytestmark = pytest.mark.django_db

TEMPLATE = {"application": "shot", "text": "a {color} {product} on a white background"}
GOOD = [
    {"question": "Is the product {color}?", "judge": "check", "check": "colour"},
    {"question": "Is it a {product}?", "judge": "vlm", "expected": "yes", "weight": 2},
    "Is the background plain?",
]

BAD_RUBRICS = [
    ([{"question": "Is it red?", "judge": "oracle"}], "unknown judge 'oracle'"),
    ([{"question": "   ", "judge": "vlm"}], "the question is empty"),
    ([{"question": "Is it red?", "judge": "check"}], "judge 'check' needs a check"),
    ([{"question": "Is it red?", "judge": "check", "check": "vibes"}], "needs a check"),
    ([{"question": "Is it red?", "judge": "vlm", "check": "colour"}], "only for judge 'check'"),
    ([{"question": "Is it red?", "weight": 0}], "weight must be above 0"),
    ([{"question": "Is it red?", "weight": "heavy"}], "weight must be a number"),
    ([{"question": "Is it red?", "expected": "maybe"}], "expected must be 'yes' or 'no'"),
    ([{"question": "Is it {flavour}?"}], "{flavour}, which the template does not define"),
    ([{"question": "Is it red?", "colour": "red"}], "unknown field(s) colour"),
]


def test_items_are_normalized_and_plain_strings_are_vlm_questions():
    items = rubric_clean(GOOD, variables=frozenset({"color", "product"}))
    assert items == [
        {
            "question": "Is the product {color}?",
            "expected": True,
            "weight": 1.0,
            "judge": "check",
            "check": "colour",
        },
        {
            "question": "Is it a {product}?",
            "expected": True,
            "weight": 2.0,
            "judge": "vlm",
            "check": "",
        },
        {
            "question": "Is the background plain?",
            "expected": True,
            "weight": 1.0,
            "judge": "vlm",
            "check": "",
        },
    ]
    assert fill_question("Is the {part} {color}?", {"color": "red"}) == "Is the {part} red?"


@pytest.mark.parametrize(("rubric", "message"), BAD_RUBRICS)
def test_bad_rubrics_are_refused_by_the_api_naming_the_field(owner, client_for, rubric, message):
    response = client_for(owner).post(
        "/api/v1/templates", TEMPLATE | {"rubric": rubric}, format="json"
    )
    assert response.status_code == 400, response.json()
    body = response.json()["error"]
    assert "rubric" in body["fields"], body
    assert message in str(body["fields"]["rubric"])
    assert "Question 1" in str(body["fields"]["rubric"])


@pytest.mark.parametrize("threshold", [-0.1, 1.5])
def test_a_threshold_outside_0_to_1_is_refused(owner, client_for, threshold):
    response = client_for(owner).post(
        "/api/v1/templates", TEMPLATE | {"pass_threshold": threshold}, format="json"
    )
    assert response.status_code == 400
    assert "pass_threshold" in response.json()["error"]["fields"]


def test_a_rubric_edit_is_a_new_template_version(owner, client_for):
    client = client_for(owner)
    assert client.post("/api/v1/templates", TEMPLATE, format="json").status_code == 201
    response = client.patch(
        "/api/v1/templates/shot",
        {"rubric": GOOD, "pass_threshold": 0.5, "max_attempts": 2},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["version"] == 2 and body["pass_threshold"] == 0.5 and body["max_attempts"] == 2
    assert [q["judge"] for q in body["rubric"]] == ["check", "vlm", "vlm"]
    v1 = PromptTemplate.objects.get(application="shot", version=1)
    assert v1.rubric == []  # the old version keeps what it had
    assert client.patch("/api/v1/templates/shot", {"max_attempts": 9}, format="json").json()[
        "error"
    ]["fields"] == {"max_attempts": "Must be between 1 and 5."}


def test_category_rubric_is_read_and_replaced_and_audited(owner, client_for):
    Category.objects.create(organization=owner.org, slug="produce", name="Produce")
    client = client_for(owner)
    empty = client.get("/api/v1/categories/produce/rubric").json()
    assert empty["questions"] == [] and empty["pass_threshold"] == 0.75
    body = {
        "questions": [
            {"question": "Is the background white?", "judge": "check", "check": "backdrop"}
        ],
        "pass_threshold": 0.9,
    }
    response = client.put("/api/v1/categories/produce/rubric", body, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["questions"][0]["check"] == "backdrop"
    assert CategoryRubric.objects.get(category__slug="produce").pass_threshold == 0.9
    assert AuditEvent.objects.filter(verb="category_rubric.edited").count() == 1
    # A category's images come from many templates: no template variables in its questions.
    bad = client.put(
        "/api/v1/categories/produce/rubric",
        {"questions": [{"question": "Is it {color}?"}]},
        format="json",
    )
    assert bad.status_code == 400 and "questions" in bad.json()["error"]["fields"]


def test_another_orgs_category_rubric_and_template_draft_are_404(owner, outsider, client_for):
    Category.objects.create(organization=owner.org, slug="produce", name="Produce")
    prompt_template_create(actor=owner.principal, **TEMPLATE)
    client = client_for(outsider)
    assert client.get("/api/v1/categories/produce/rubric").status_code == 404
    assert (
        client.put(
            "/api/v1/categories/produce/rubric", {"questions": []}, format="json"
        ).status_code
        == 404
    )
    assert (
        client.post(
            "/api/v1/templates/shot/rubric-draft", {"description": "a red apple"}, format="json"
        ).status_code
        == 404
    )


def test_editors_cannot_change_category_rubrics_or_quality_settings(persona, client_for):
    editor = persona("editor")
    Category.objects.create(organization=editor.org, slug="produce", name="Produce")
    client = client_for(editor)
    assert (
        client.put(
            "/api/v1/categories/produce/rubric", {"questions": []}, format="json"
        ).status_code
        == 403
    )
    assert (
        client.patch("/api/v1/quality-settings", {"vlm_enabled": True}, format="json").status_code
        == 403
    )
    assert client.get("/api/v1/quality-settings").json()["vlm_enabled"] is False


def test_quality_settings_turn_judges_on_per_organization(owner, outsider, client_for, settings):
    settings.EASEL_VLM_URL = "http://vlm.internal/v1"
    response = client_for(owner).patch(
        "/api/v1/quality-settings", {"vlm_enabled": True}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["vlm_enabled"] is True
    assert response.json()["configured"]["vlm"] is True
    assert client_for(outsider).get("/api/v1/quality-settings").json()["vlm_enabled"] is False
    bad = client_for(owner).patch("/api/v1/quality-settings", {"oracle": True}, format="json")
    assert bad.status_code == 400


def test_drafting_a_rubric_without_an_llm_is_a_clear_409(owner, client_for, settings):
    settings.EASEL_LLM_URL = ""
    prompt_template_create(actor=owner.principal, **TEMPLATE)
    response = client_for(owner).post(
        "/api/v1/templates/shot/rubric-draft", {"description": "a red apple"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "llm_not_configured"


def test_validation_error_names_question_number():
    with pytest.raises(ValidationError) as info:
        rubric_clean(["ok?", {"question": "x", "judge": "nope"}])
    assert info.value.message_dict == {
        "rubric": ["Question 2: unknown judge 'nope'; use one of: check, clip, vlm."]
    }
