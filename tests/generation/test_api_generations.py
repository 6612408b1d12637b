"""The generations API: submit, Prefer: wait, list/filter, cancel, idempotency, quota, isolation."""

from __future__ import annotations

import threading
from unittest import mock

import pytest
from django.db import connection
from rest_framework.test import APIClient

from generation.api.generations import prefer_wait_seconds
from generation.models import GeneratedImage, GenerationJob, JobStatus
from tenants.models import Quota, UsageRecord
from tests.factories import make_image_row

BODY = {"prompt": "a red apple on a table", "model": "tiny", "seed": 7, "steps": 2}


@pytest.fixture
def no_enqueue():
    """Keep jobs pending: record what would be sent instead of sending it."""
    sent: list[tuple[str, str]] = []

    def fake(*, job, countdown=None):
        sent.append((str(job.id), job.priority))

    with mock.patch("generation.tasks.enqueue_generation", side_effect=fake):
        yield sent


@pytest.fixture
def submit(client_for, owner, tiny_base_model, no_enqueue):
    client = client_for(owner)

    def post(body: dict | None = None, **headers: str):
        return client.post("/api/v1/generations", body or BODY, format="json", **headers)

    return post


def test_submit_returns_202_with_location_and_a_pending_job(submit, no_enqueue):
    response = submit()
    assert response.status_code == 202, response.content
    job = response.json()
    assert response["Location"] == f"/api/v1/generations/{job['id']}"
    assert job["status"] == "pending"
    assert job["params"]["seed"] == 7 and job["params"]["steps"] == 2
    assert job["base_model"] == "tiny" and job["images"] == []
    assert no_enqueue == [(job["id"], "interactive")]


def test_bulk_priority_is_recorded_and_sent_to_the_bulk_queue(submit, no_enqueue):
    job = submit(BODY | {"priority": "bulk"}).json()
    assert job["priority"] == "bulk"
    assert no_enqueue == [(job["id"], "bulk")]


def test_enqueue_happens_on_commit_and_targets_the_priority_queue(
    client_for, owner, tiny_base_model, django_capture_on_commit_callbacks
):
    with (
        mock.patch("generation.tasks.run_generation_bulk.apply_async") as bulk,
        mock.patch("generation.tasks.run_generation_interactive.apply_async") as interactive,
        django_capture_on_commit_callbacks(execute=True),
    ):
        job = client_for(owner).post(
            "/api/v1/generations", BODY | {"priority": "bulk"}, format="json"
        )
    assert job.status_code == 202
    bulk.assert_called_once_with(args=[job.json()["id"]])
    interactive.assert_not_called()


def test_unknown_field_and_bad_values_are_400_with_the_field_named(submit):
    response = submit(BODY | {"colour": "red"})
    assert response.status_code == 400
    assert "colour" in response.json()["error"]["fields"]
    response = submit(BODY | {"model": "no-such-model"})
    assert response.status_code == 400
    assert "model" in response.json()["error"]["fields"]


def test_viewer_cannot_submit(client_for, persona, tiny_base_model, no_enqueue):
    response = client_for(persona("viewer")).post("/api/v1/generations", BODY, format="json")
    assert response.status_code == 403
    assert not GenerationJob.objects.exists()


def test_prefer_wait_returns_the_finished_job_with_200(submit, no_enqueue):
    def finish_at_once(*, job, countdown=None):
        GenerationJob.objects.filter(id=job.id).update(status=JobStatus.SUCCEEDED)

    with mock.patch("generation.tasks.enqueue_generation", side_effect=finish_at_once):
        response = submit(HTTP_PREFER="wait=5")
    assert response.status_code == 200
    assert response["Preference-Applied"] == "wait=5"
    assert response.json()["status"] == "succeeded"


def test_prefer_wait_gives_202_when_the_job_is_not_done_in_time(submit):
    response = submit(HTTP_PREFER="wait=1")
    assert response.status_code == 202
    assert not response.has_header("Preference-Applied")


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("wait=5", 5), ("respond-async, wait=10", 10), ("wait", 60), ("wait=600", 60), ("x", None)],
)
def test_prefer_wait_is_parsed_and_capped_at_60(header, seconds):
    assert prefer_wait_seconds(header) == seconds


def test_list_filters_by_status_and_paginates_with_a_cursor(submit, client_for, owner):
    ids = [submit(BODY | {"seed": i}).json()["id"] for i in range(3)]
    GenerationJob.objects.filter(id=ids[0]).update(status=JobStatus.SUCCEEDED)
    client = client_for(owner)
    pending = client.get("/api/v1/generations", {"status": "pending"}).json()
    assert {j["id"] for j in pending["results"]} == set(ids[1:])
    first = client.get("/api/v1/generations", {"page_size": 2}).json()
    assert len(first["results"]) == 2 and first["next"]
    second = client.get(first["next"]).json()
    seen = [j["id"] for j in first["results"] + second["results"]]
    assert sorted(seen) == sorted(ids)


def test_list_filters_by_date(submit, client_for, owner):
    submit()
    client = client_for(owner)
    assert (
        len(
            client.get("/api/v1/generations", {"created_after": "2000-01-01T00:00:00Z"}).json()[
                "results"
            ]
        )
        == 1
    )
    assert (
        client.get("/api/v1/generations", {"created_before": "2000-01-01T00:00:00Z"}).json()[
            "results"
        ]
        == []
    )


def test_cancel_of_a_pending_job_is_immediate_and_releases_the_quota(submit, client_for, owner):
    job = submit().json()
    response = client_for(owner).post(f"/api/v1/generations/{job['id']}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "canceled"
    states = set(
        UsageRecord.objects.filter(reference=f"generation:{job['id']}").values_list(
            "state", flat=True
        )
    )
    assert states == {"released"}


def test_cancel_of_a_running_job_asks_the_worker(submit, client_for, owner):
    job = submit().json()
    GenerationJob.objects.filter(id=job["id"]).update(status=JobStatus.RUNNING)
    body = client_for(owner).post(f"/api/v1/generations/{job['id']}/cancel").json()
    assert body["status"] == "running" and body["cancel_requested"] is True


def test_cancel_of_a_succeeded_job_is_a_409(submit, client_for, owner):
    job = submit().json()
    GenerationJob.objects.filter(id=job["id"]).update(status=JobStatus.SUCCEEDED)
    response = client_for(owner).post(f"/api/v1/generations/{job['id']}/cancel")
    assert response.status_code == 409
    assert "already succeeded" in response.json()["error"]["message"]


# --- isolation ---------------------------------------------------------------------------------


def _image_for(job_id: str) -> GeneratedImage:
    return make_image_row(GenerationJob.objects.get(id=job_id))


def test_outsider_gets_404_for_another_orgs_job_images_and_download(submit, client_for, outsider):
    job = submit().json()
    image = _image_for(job["id"])
    client = client_for(outsider)
    assert client.get(f"/api/v1/generations/{job['id']}").status_code == 404
    assert client.post(f"/api/v1/generations/{job['id']}/cancel").status_code == 404
    assert client.get(f"/api/v1/images/{image.id}").status_code == 404
    assert client.get(f"/api/v1/images/{image.id}/download").status_code == 404
    assert client.get("/api/v1/generations").json()["results"] == []
    assert GenerationJob.objects.get(id=job["id"]).status == "pending"


def test_owner_gets_image_with_a_short_lived_url(submit, client_for, owner):
    job = submit().json()
    image = _image_for(job["id"])
    body = client_for(owner).get(f"/api/v1/images/{image.id}").json()
    assert body["job"] == job["id"] and body["url"] and body["url_expires_at"]
    redirect = client_for(owner).get(f"/api/v1/images/{image.id}/download")
    assert redirect.status_code == 302


def test_forged_local_download_token_is_404(client_for, owner):
    response = APIClient().get("/api/v1/images/file/not-a-token")
    assert response.status_code == 404


# --- idempotency -------------------------------------------------------------------------------


def test_same_idempotency_key_and_body_replays_the_first_response(submit):
    first = submit(HTTP_IDEMPOTENCY_KEY="k-1")
    again = submit(HTTP_IDEMPOTENCY_KEY="k-1")
    assert again.status_code == first.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true"
    assert GenerationJob.objects.count() == 1


def test_same_idempotency_key_with_another_body_is_a_409(submit):
    submit(HTTP_IDEMPOTENCY_KEY="k-2")
    response = submit(BODY | {"seed": 8}, HTTP_IDEMPOTENCY_KEY="k-2")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert GenerationJob.objects.count() == 1


def test_quota_exceeded_is_a_429_and_creates_no_job(submit, owner):
    Quota.objects.update_or_create(
        organization=owner.org, team=None, defaults={"images_per_day": 1}
    )
    assert submit().status_code == 202
    response = submit(BODY | {"seed": 9})
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "quota_exceeded"
    assert response.has_header("Retry-After")
    assert GenerationJob.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_idempotency_key_create_one_job(
    client_for, owner, tiny_base_model, no_enqueue
):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL (SQLite serializes them anyway)")
    barrier = threading.Barrier(4)
    codes: list[int] = []

    def post() -> None:
        client = client_for(owner)
        barrier.wait()
        try:
            codes.append(
                client.post(
                    "/api/v1/generations", BODY, format="json", HTTP_IDEMPOTENCY_KEY="same"
                ).status_code
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert GenerationJob.objects.count() == 1
    assert codes.count(202) >= 1 and set(codes) <= {202, 409}


@pytest.mark.django_db(transaction=True)
def test_concurrent_submits_cannot_overshoot_the_quota(
    client_for, owner, tiny_base_model, no_enqueue
):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")
    Quota.objects.update_or_create(
        organization=owner.org, team=None, defaults={"images_per_day": 2}
    )
    barrier = threading.Barrier(4)
    codes: list[int] = []

    def post(seed: int) -> None:
        client = client_for(owner)
        barrier.wait()
        try:
            codes.append(
                client.post("/api/v1/generations", BODY | {"seed": seed}, format="json").status_code
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [202, 202, 429, 429]
    assert GenerationJob.objects.count() == 2
