"""Studio pages doing their work: submitting a generation through the shared service, the live
job fragment, review decisions (single, htmx, bulk, publish, audit), the agreement report, and
promote/rollback from the models page."""

from __future__ import annotations

import html

import pytest

from generation.models import GenerationJob, ImageReview, JobStatus, PublishedImage
from models_registry.models import Alias, AliasHistory
from tenants.models import AuditEvent
from tenants.roles import Role

from .conftest import make_category, make_job

pytestmark = pytest.mark.django_db


def _text(response) -> str:  # type: ignore[no-untyped-def]
    return html.unescape(response.content.decode())


# --- generate -----------------------------------------------------------------------------------


def test_generate_form_creates_a_pending_job_through_the_shared_service(
    persona, studio_client, tiny_base_model, django_capture_on_commit_callbacks
):
    editor = persona(Role.EDITOR)
    client = studio_client(editor)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            "/studio/generate/",
            {
                "target": "model:tiny",
                "prompt": "a blue teapot",
                "style": "studio",
                "steps": "3",
                "seed": "7",
                "num_images": "2",
            },
        )
    job = GenerationJob.objects.get(organization=editor.org)
    assert response.status_code == 302
    assert response.url == f"/studio/jobs/{job.pk}/"
    assert job.status == JobStatus.PENDING
    assert job.created_by == editor.user
    assert job.num_images == 2
    assert job.params["seed"] == 7 and job.params["steps"] == 3
    assert job.prompt.startswith("a blue teapot, soft studio lighting")
    assert len(callbacks) == 1  # the task is enqueued on commit, as from the API
    assert AuditEvent.objects.filter(verb="generation.submitted", object_id=str(job.pk)).exists()


def test_generate_form_shows_protocol_errors_next_to_their_fields(
    persona, studio_client, tiny_base_model
):
    client = studio_client(persona(Role.EDITOR))
    response = client.post(
        "/studio/generate/", {"target": "model:tiny", "prompt": "x", "width": "1000"}
    )
    assert response.status_code == 400
    text = _text(response)
    assert "Give height together with width" in text
    assert not GenerationJob.objects.exists()


def test_generate_form_refuses_an_unknown_default_model_with_a_clear_message(
    persona, studio_client
):
    editor = persona(Role.EDITOR)
    editor.org.default_model = "no-such-model"
    editor.org.save()
    response = studio_client(editor).post("/studio/generate/", {"prompt": "a mug"})
    assert response.status_code == 400
    assert "default model 'no-such-model' cannot be used" in _text(response)


def test_regenerate_like_this_prefills_the_form_from_an_image(persona, studio_client, job_a):
    image = job_a.images.order_by("index").last()
    page = _text(studio_client(persona(Role.EDITOR)).get(f"/studio/generate/?image={image.pk}"))
    assert "a red mug on a white table" in page
    assert f'name="seed" value="{image.seed}"' in page


def test_regenerate_from_another_orgs_image_is_404(outsider, studio_client, job_a):
    image = job_a.images.first()
    assert studio_client(outsider).get(f"/studio/generate/?image={image.pk}").status_code == 404


# --- job page ------------------------------------------------------------------------------------


def test_running_job_fragment_keeps_polling_and_a_finished_one_stops(persona, studio_client):
    editor = persona(Role.EDITOR)
    client = studio_client(editor)
    running = make_job(editor.org, user=editor.user, status=JobStatus.RUNNING)
    fragment = _text(client.get(f"/studio/jobs/{running.pk}/status/"))
    assert 'hx-trigger="every 1s"' in fragment
    assert 'value="30"' in fragment  # 30 % progress
    done = make_job(editor.org, user=editor.user, images=2, scores={"passed": True, "score": 0.9})
    fragment = _text(client.get(f"/studio/jobs/{done.pk}/status/"))
    assert "hx-trigger" not in fragment
    assert fragment.count("data-image=") == 2
    assert "gate: passed 0.90" in fragment


def test_job_page_shows_gate_failures_with_their_reasons(persona, studio_client):
    editor = persona(Role.EDITOR)
    job = make_job(
        editor.org, scores={"passed": False, "score": 0.2, "reasons": ["Image is blank"]}
    )
    page = _text(studio_client(editor).get(f"/studio/jobs/{job.pk}/"))
    assert "gate: failed 0.20" in page
    assert "Image is blank" in page


def test_image_file_is_served_with_its_bytes_and_download_name(persona, studio_client, job_a):
    image = job_a.images.first()
    client = studio_client(persona(Role.VIEWER))
    response = client.get(f"/studio/images/{image.pk}/file/?download=1")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")
    assert f"seed{image.seed}.png" in response["Content-Disposition"]


def test_image_detail_shows_metadata_and_lineage(persona, studio_client, job_a):
    image = job_a.images.first()
    page = _text(studio_client(persona(Role.VIEWER)).get(f"/studio/images/{image.pk}/"))
    assert "a red mug on a white table" in page
    assert f"/studio/jobs/{job_a.pk}/" in page
    assert image.sha256 in page
    assert "cfg_scale" in page


# --- review --------------------------------------------------------------------------------------


def test_queue_lists_undecided_images_and_hides_gate_failures(persona, studio_client):
    reviewer = persona(Role.REVIEWER)
    passed = make_job(reviewer.org, scores={"passed": True, "score": 0.8})
    failed = make_job(reviewer.org, scores={"passed": False, "score": 0.1})
    unscored = make_job(reviewer.org)
    page = _text(studio_client(reviewer).get("/studio/review/"))
    assert str(passed.images.first().pk) in page
    assert str(unscored.images.first().pk) in page
    assert str(failed.images.first().pk) not in page


def test_queue_filters_by_category_and_score(persona, studio_client):
    reviewer = persona(Role.REVIEWER)
    mugs = make_category(reviewer.org, slug="mugs", versions=0)
    in_mugs = make_job(reviewer.org, category=mugs, scores={"passed": True, "score": 0.9})
    low = make_job(reviewer.org, category=mugs, scores={"passed": True, "score": 0.3})
    other = make_job(reviewer.org, scores={"passed": True, "score": 0.9})
    page = _text(studio_client(reviewer).get("/studio/review/?category=mugs&min_score=0.5"))
    assert str(in_mugs.images.first().pk) in page
    assert str(low.images.first().pk) not in page
    assert str(other.images.first().pk) not in page


def test_approving_publishes_the_image_for_its_category_and_is_audited(persona, studio_client):
    reviewer = persona(Role.REVIEWER)
    mugs = make_category(reviewer.org, slug="mugs", versions=0)
    job = make_job(reviewer.org, category=mugs, scores={"passed": True, "score": 0.9})
    image = job.images.first()
    response = studio_client(reviewer).post(
        f"/studio/review/{image.pk}/", {"decision": "approved"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert 'data-decision="approved"' in _text(response)
    review = ImageReview.objects.get(image=image)
    assert review.reviewer == reviewer.user and review.gate_passed is True
    assert PublishedImage.objects.get(category=mugs).image == image
    verbs = set(AuditEvent.objects.filter(object_id=str(image.pk)).values_list("verb", flat=True))
    assert verbs == {"image.approved", "image.published"}


def test_reject_needs_a_reason_and_unpublishes(persona, studio_client):
    reviewer = persona(Role.REVIEWER)
    client = studio_client(reviewer)
    mugs = make_category(reviewer.org, slug="mugs", versions=0)
    image = make_job(reviewer.org, category=mugs).images.first()
    client.post(f"/studio/review/{image.pk}/", {"decision": "approved"})
    response = client.post(
        f"/studio/review/{image.pk}/", {"decision": "rejected"}, HTTP_HX_REQUEST="true"
    )
    assert "Say why the image is rejected" in _text(response)
    assert ImageReview.objects.get(image=image).status == "approved"
    client.post(
        f"/studio/review/{image.pk}/", {"decision": "rejected", "reason_other": "wrong handle"}
    )
    review = ImageReview.objects.get(image=image)
    assert (review.status, review.reason) == ("rejected", "wrong handle")
    assert not PublishedImage.objects.filter(category=mugs).exists()
    assert AuditEvent.objects.filter(verb="image.unpublished", object_id=str(image.pk)).exists()


def test_bulk_reject_decides_every_selected_image_of_the_org_only(persona, outsider, studio_client):
    reviewer = persona(Role.REVIEWER)
    mine = make_job(reviewer.org, images=3)
    theirs = make_job(outsider.org, images=1)
    ids = [str(i.pk) for i in mine.images.all()] + [str(theirs.images.first().pk)]
    response = studio_client(reviewer).post(
        "/studio/review/bulk/",
        {"images": ids, "decision": "rejected", "reason": "Off-brand style"},
    )
    assert response.status_code == 302
    assert ImageReview.objects.filter(organization=reviewer.org, status="rejected").count() == 3
    assert not ImageReview.objects.filter(image__job=theirs).exists()


def test_agreement_report_counts_reviewer_vs_gate(persona, studio_client):
    reviewer = persona(Role.REVIEWER)
    client = studio_client(reviewer)
    passed = make_job(reviewer.org, images=2, scores={"passed": True, "score": 0.9})
    failed = make_job(reviewer.org, images=1, scores={"passed": False, "score": 0.1})
    first, second = passed.images.order_by("index")
    client.post(f"/studio/review/{first.pk}/", {"decision": "approved"})
    client.post(f"/studio/review/{second.pk}/", {"decision": "rejected", "reason": "Low quality"})
    bad = failed.images.first()
    client.post(f"/studio/review/{bad.pk}/", {"decision": "rejected", "reason": "Low quality"})
    page = _text(client.get("/studio/review/report/"))
    assert 'data-cell="approved-passed">1<' in page
    assert 'data-cell="rejected-passed">1<' in page
    assert 'data-cell="rejected-failed">1<' in page
    assert "67 %" in page  # 2 of 3 scored decisions agree with the gate


# --- models --------------------------------------------------------------------------------------


def test_admin_promotes_and_rolls_back_and_history_shows_both(persona, studio_client, category_a):
    admin = persona(Role.ADMIN)
    client = studio_client(admin)
    first, second = category_a.versions.order_by("id")
    for version in (first, second):
        response = client.post(
            f"/studio/models/{category_a.slug}/promote/",
            {"version": version.pk, "alias": "production"},
        )
        assert response.status_code == 302
    assert Alias.objects.get(category=category_a, name="production").version == second
    client.post(f"/studio/models/{category_a.slug}/rollback/", {"alias": "production"})
    assert Alias.objects.get(category=category_a, name="production").version == first
    assert AliasHistory.objects.filter(category=category_a).count() == 3
    page = _text(client.get(f"/studio/models/{category_a.slug}/"))
    assert "rollback" in page and "promote" in page
    assert "data-confirm=" in page


def test_rollback_with_nothing_to_roll_back_explains_why(persona, studio_client, category_a):
    client = studio_client(persona(Role.ADMIN))
    response = client.post(
        f"/studio/models/{category_a.slug}/rollback/", {"alias": "production"}, follow=True
    )
    assert "Not rolled back" in _text(response)


def test_promote_buttons_are_shown_to_admins_only(persona, studio_client, category_a):
    url = f"/studio/models/{category_a.slug}/"
    assert "Promote to production" in _text(studio_client(persona(Role.ADMIN)).get(url))
    assert "Promote to production" not in _text(studio_client(persona(Role.EDITOR)).get(url))


def test_promote_a_version_of_another_org_is_404(persona, outsider, studio_client, category_a):
    theirs = make_category(outsider.org, slug="theirs", versions=1).versions.first()
    response = studio_client(persona(Role.ADMIN)).post(
        f"/studio/models/{category_a.slug}/promote/", {"version": theirs.pk}
    )
    assert response.status_code == 404
