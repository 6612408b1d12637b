"""Rate limits per API key and per organization (429 + Retry-After in the error format), counted in
the shared cache (Redis in CI), and ``Prefer: wait`` bounded by the organization's waiting slots."""

from __future__ import annotations

import os
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache

from generation.models import GenerationJob, JobStatus


def test_the_shared_cache_is_redis_when_services_are_required():
    if os.environ.get("EASEL_REQUIRE_SERVICES") == "1":
        backend = django_settings.CACHES["default"]["BACKEND"]
        assert backend.endswith("RedisCache"), "rate limits must count across web processes"
        cache.set("easel-rate-limit-probe", 1, 5)
        assert cache.get("easel-rate-limit-probe") == 1


@pytest.mark.django_db
def test_a_key_over_its_rate_gets_429_with_retry_after_and_other_keys_are_unaffected(
    owner, persona, outsider, client_for, settings
):
    settings.EASEL_RATE_LIMIT_PER_KEY = "3/min"
    client = client_for(owner)
    assert [client.get("/api/v1/me").status_code for _ in range(3)] == [200, 200, 200]
    refused = client.get("/api/v1/me")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    error = refused.json()["error"]
    assert error["code"] == "throttled" and "Expected available in" in error["message"]
    assert client_for(persona("editor")).get("/api/v1/me").status_code == 200
    assert client_for(outsider).get("/api/v1/me").status_code == 200


@pytest.mark.django_db
def test_an_organization_over_its_rate_is_refused_whichever_key_asks(
    owner, persona, outsider, client_for, settings
):
    settings.EASEL_RATE_LIMIT_PER_ORG = "4/min"
    ours = [client_for(owner), client_for(persona("editor"))]
    codes = [ours[i % 2].get("/api/v1/me").status_code for i in range(5)]
    assert codes == [200, 200, 200, 200, 429]
    assert client_for(outsider).get("/api/v1/me").status_code == 200


@pytest.mark.django_db
def test_writes_have_their_own_lower_limit(owner, client_for, settings, tiny_base_model):
    settings.EASEL_RATE_LIMIT_WRITES_PER_KEY = "2/min"
    client = client_for(owner)
    body = {"prompt": "a red apple", "model": "tiny", "steps": 2}
    with mock.patch("generation.tasks.enqueue_generation"):
        codes = [client.post("/api/v1/generations", body, format="json").status_code for _ in "abc"]
    assert codes == [202, 202, 429]
    assert GenerationJob.objects.filter(organization=owner.org).count() == 2
    assert client.get("/api/v1/generations").status_code == 200  # reads still pass


@pytest.mark.django_db
def test_prefer_wait_without_a_free_waiting_slot_answers_at_once(
    owner, client_for, settings, tiny_base_model
):
    def finish_at_once(*, job, countdown=None):
        GenerationJob.objects.filter(id=job.id).update(status=JobStatus.SUCCEEDED)

    client = client_for(owner)
    body = {"prompt": "a red apple", "model": "tiny", "steps": 2}
    with mock.patch("generation.tasks.enqueue_generation", side_effect=finish_at_once):
        settings.EASEL_MAX_WAITERS_PER_ORG = 1
        held = client.post("/api/v1/generations", body, format="json", HTTP_PREFER="wait=5")
        assert held.status_code == 200 and held["Preference-Applied"] == "wait=5"
        settings.EASEL_MAX_WAITERS_PER_ORG = 0  # every slot taken
        at_once = client.post("/api/v1/generations", body, format="json", HTTP_PREFER="wait=5")
    assert at_once.status_code == 202 and not at_once.has_header("Preference-Applied")
    assert at_once.has_header("Location")
