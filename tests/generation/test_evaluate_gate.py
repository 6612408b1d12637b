"""``manage.py evaluate_gate``: the check judge's precision and recall on the shipped evaluation
set, then reviewer-vs-gate agreement per template application from real review decisions, for
one organization (``--org``) or all of them."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from generation.models import GeneratedImage, GenerationJob, JobStatus
from generation.review_services import image_review_decide
from generation.template_services import prompt_template_create
from tenants.roles import Role
from tests.factories import make_image_row

pytestmark = pytest.mark.django_db


def _job(org, template=None) -> GenerationJob:  # type: ignore[no-untyped-def]
    return GenerationJob.objects.create(
        organization=org,
        template=template,
        template_version=template.version if template else None,
        params={"prompt": "a red mug", "width": 64, "height": 64},
        prompt="a red mug",
        batch_key="test",
        status=JobStatus.SUCCEEDED,
    )


def _reviewed(reviewer, job, index: int, *, gate: bool | None, status: str) -> GeneratedImage:  # type: ignore[no-untyped-def]
    image = make_image_row(job, index=index)
    image.scores = {} if gate is None else {"passed": gate, "score": 0.9 if gate else 0.1}
    image.save(update_fields=["scores"])
    reason = "Low quality" if status == "rejected" else ""
    image_review_decide(actor=reviewer.principal, image=image, status=status, reason=reason)
    return image


@pytest.fixture
def reviews(persona, outsider):  # type: ignore[no-untyped-def]
    """Acme: 'product-hero' 3 scored decisions (2 agree) and 1 without a gate verdict,
    'lifestyle' 1 (agrees), 1 job without a template; Globex: 2 that disagree."""
    owner, reviewer = persona(Role.OWNER), persona(Role.REVIEWER)
    hero = prompt_template_create(actor=owner.principal, application="product-hero", text="{x}")
    life = prompt_template_create(actor=owner.principal, application="lifestyle", text="{x}")
    job = _job(owner.org, hero)
    _reviewed(reviewer, job, 0, gate=True, status="approved")
    _reviewed(reviewer, job, 1, gate=True, status="rejected")
    _reviewed(reviewer, job, 2, gate=False, status="rejected")
    _reviewed(reviewer, job, 3, gate=None, status="approved")
    _reviewed(reviewer, _job(owner.org, life), 0, gate=False, status="rejected")
    _reviewed(reviewer, _job(owner.org), 0, gate=True, status="approved")
    theirs = prompt_template_create(
        actor=outsider.principal, application="product-hero", text="{x}"
    )
    other = _job(outsider.org, theirs)
    _reviewed(outsider, other, 0, gate=True, status="rejected")
    _reviewed(outsider, other, 1, gate=False, status="approved")
    return owner.org


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command("evaluate_gate", *args, stdout=out)
    return out.getvalue()


def _row(text: str, application: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"{application} "))
    return line[24:].split()


def test_prints_the_sets_precision_and_recall_and_each_applications_agreement(reviews):
    text = _run("--org", "acme")
    assert "Built-in checks on the evaluation set" in text
    assert "271 images: 67 good, 204 defects" in text
    overall = next(line for line in text.splitlines() if line.startswith("overall "))
    assert overall.split()[1:3] == ["0.990", "1.000"]  # precision, recall
    assert "Reviewer vs gate, per template application (organization 'acme')" in text
    # agreement, "agreed of scored", a+p, r+p, a+f, r+f, no verdict, approval rate
    assert _row(text, "product-hero") == ["67%", "2", "of", "3", "1", "1", "0", "1", "1", "50%"]
    assert _row(text, "lifestyle") == ["100%", "1", "of", "1", "0", "0", "0", "1", "0", "0%"]
    assert _row(text, "(no template)") == ["100%", "1", "of", "1", "1", "0", "0", "0", "0", "100%"]
    assert _row(text, "all applications")[:4] == ["80%", "4", "of", "5"]


def test_the_outsiders_reviews_count_only_without_org(reviews):
    mine = _run("--org", "acme")
    assert _row(mine, "product-hero")[:4] == ["67%", "2", "of", "3"]
    every = _run()
    assert "(all organizations)" in every
    # Globex's two product-hero decisions both disagree with the gate: 2 of 5.
    assert _row(every, "product-hero")[:4] == ["40%", "2", "of", "5"]
    assert _row(every, "all applications")[:4] == ["57%", "4", "of", "7"]


def test_an_organization_without_reviews_says_so(org_a):
    text = _run("--org", "acme")
    assert text.rstrip().endswith("No reviewed images yet.")


def test_an_unknown_organization_or_a_missing_set_is_refused(org_a, tmp_path: Path):
    with pytest.raises(CommandError, match="No organization with slug 'initech'"):
        _run("--org", "initech")
    with pytest.raises(CommandError, match="No evaluation set at .* \\(no manifest.json\\)"):
        _run("--set", str(tmp_path))
