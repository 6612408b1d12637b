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


def test_the_job_page_lists_every_attempt_with_its_prompt_refinement_and_verdicts(
    owner, studio_client
):
    from generation.models import GenerationAttempt
    from tests.studio.conftest import make_job

    failed = {
        "passed": False,
        "score": 0.5,
        "threshold": 1.0,
        "reasons": ["Wrong colour: the subject looks green, not red."],
        "answers": [
            {
                "key": "t1",
                "question": "Is the product red?",
                "judge": "check",
                "check": "colour",
                "expected": True,
                "weight": 1.0,
                "required": False,
                "answer": False,
                "confidence": 0.9,
                "reason": "Wrong colour: the subject looks green, not red.",
                "error": "",
            }
        ],
    }
    job = make_job(owner.org, user=owner.user, scores=failed)
    first = job.images.get()
    first.is_result = False
    first.save()
    second = job.images.create(
        organization=owner.org,
        index=0,
        attempt=2,
        seed=99,
        storage_key=first.storage_key,
        sha256=first.sha256,
        width=64,
        height=64,
        scores=failed | {"passed": True, "score": 1.0, "reasons": []},
    )
    GenerationAttempt.objects.create(
        job=job, number=1, prompt="a red mug", params={"cfg_scale": 5, "seeds": [1]}, passed=False
    )
    GenerationAttempt.objects.create(
        job=job,
        number=2,
        prompt="a red mug, red",
        negative_prompt="wrong colour",
        params={"cfg_scale": 6.5, "seeds": [99]},
        refinement={"by": "rules", "after_attempt": 1, "changes": ["stressed 'red' in the prompt"]},
        passed=True,
    )
    page = html.unescape(studio_client(owner).get(f"/studio/jobs/{job.pk}/").content.decode())
    assert "Attempt 1" in page and "Attempt 2" in page
    assert "a red mug, red" in page and "negative: wrong colour" in page
    assert "Refined by rules after attempt 1: stressed 'red' in the prompt." in page
    assert "Wrong colour: the subject looks green, not red." in page
    detail = studio_client(owner).get(f"/studio/images/{second.pk}/").content.decode()
    assert 'data-testid="gate-answers"' in detail and "Is the product red?" in detail
