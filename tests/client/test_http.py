"""The client's HTTP behaviour against scripted responses (``httpx.MockTransport``, not the live
server): which failures are retried and how long it waits, the ``Idempotency-Key`` it repeats,
the exceptions it raises, how it pages, and that presigned links never see the API key. The
client's ``sleep`` is replaced, so nothing here really waits."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from easel_client import (
    APIConnectionError,
    AuthenticationError,
    Conflict,
    Easel,
    EaselError,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerError,
    ValidationError,
    WaitTimeout,
)
from easel_client._http import parse_retry_after
from easel_client.types import Generation, from_api

JOB = {"id": "5f0c8d1e-0000-4000-8000-000000000001", "status": "pending", "images": []}
API = "http://easel.test"
BEHIND_PROXY = "http://internal:8000"  # the host a server behind a proxy may put in its links


def scripted(
    *responses: httpx.Response | Exception,
) -> tuple[Easel, list[httpx.Request], list[float]]:
    """A client whose server answers ``responses`` in order, with the requests it got and the
    sleeps it asked for."""
    requests: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return _client(handler, requests)


def _client(
    handler: Callable[[httpx.Request], httpx.Response], requests: list[httpx.Request]
) -> tuple[Easel, list[httpx.Request], list[float]]:
    easel = Easel(api_key="esl_test_key", base_url=API, transport=httpx.MockTransport(handler))
    sleeps: list[float] = []
    easel.http.sleep = sleeps.append
    easel.http.random = lambda: 0.5  # the jitter factor becomes 0.75
    return easel, requests, sleeps


def error(status: int, code: str, message: str = "", **kwargs) -> httpx.Response:  # type: ignore[no-untyped-def]
    body = {"error": {"code": code, "message": message or code, "fields": kwargs.pop("fields", {})}}
    return httpx.Response(status, json=body, **kwargs)


def test_a_create_retried_after_503s_sends_one_idempotency_key_on_every_attempt():
    easel, requests, sleeps = scripted(
        error(503, "unavailable"), error(503, "unavailable"), httpx.Response(202, json=JOB)
    )
    job = easel.generations.create("a red apple", model="tiny", steps=2)
    assert job.id == JOB["id"] and job.status == "pending"
    keys = [r.headers.get("Idempotency-Key") for r in requests]
    assert len(keys) == 3 and keys[0] and len(set(keys)) == 1
    assert [json.loads(r.content) for r in requests] == [
        {"prompt": "a red apple", "model": "tiny", "steps": 2}
    ] * 3
    assert sleeps == [0.5 * 0.75, 1.0 * 0.75]  # exponential backoff with jitter


def test_each_create_call_gets_its_own_idempotency_key_unless_one_is_given():
    easel, requests, _ = scripted(*(httpx.Response(202, json=JOB) for _ in range(3)))
    easel.generations.create("a")
    easel.generations.create("a")
    easel.generations.create("a", idempotency_key="order-42")
    keys = [r.headers["Idempotency-Key"] for r in requests]
    assert keys[0] != keys[1] and keys[2] == "order-42"


def test_a_429_waits_exactly_as_long_as_retry_after_says_and_keeps_the_key():
    easel, requests, sleeps = scripted(
        error(429, "throttled", "Request was throttled.", headers={"Retry-After": "7"}),
        httpx.Response(202, json=JOB),
    )
    easel.generations.create("a red apple", model="tiny")
    assert sleeps == [7.0]
    assert requests[0].headers["Idempotency-Key"] == requests[1].headers["Idempotency-Key"]


def test_a_retry_after_as_an_http_date_is_honoured():
    when = datetime.now(UTC) + timedelta(seconds=30)
    assert 25 <= parse_retry_after(format_datetime(when, usegmt=True)) <= 30
    assert parse_retry_after("0") == 0 and parse_retry_after(None) is None


def test_a_retry_after_longer_than_the_limit_is_raised_instead_of_slept_through():
    easel, requests, sleeps = scripted(
        error(429, "quota_exceeded", "Daily image quota reached.", headers={"Retry-After": "3600"})
    )
    with pytest.raises(RateLimited) as caught:
        easel.generations.create("a")
    assert (caught.value.retry_after, caught.value.code, caught.value.status) == (
        3600,
        "quota_exceeded",
        429,
    )
    assert len(requests) == 1 and sleeps == []


def test_a_500_the_server_replays_for_the_key_is_final():
    easel, requests, sleeps = scripted(
        error(500, "server_error"),
        error(500, "server_error", headers={"Idempotent-Replayed": "true"}),
    )
    with pytest.raises(ServerError) as caught:
        easel.generations.create("a")
    assert caught.value.code == "server_error"
    assert len(requests) == 2 and len(sleeps) == 1


def test_a_post_that_is_not_idempotent_is_retried_on_503_but_not_on_500():
    easel, requests, _ = scripted(error(503, "unavailable"), httpx.Response(200, json={}))
    easel.categories.promote("mugs", 3)
    assert len(requests) == 2
    easel, requests, _ = scripted(error(500, "server_error"))
    with pytest.raises(ServerError):
        easel.categories.promote("mugs", 3)
    assert len(requests) == 1  # the first attempt may have promoted: never repeat it blindly


def test_connection_failures_are_retried_unless_the_request_may_have_been_applied():
    refused = httpx.ConnectError("Connection refused")
    easel, requests, sleeps = scripted(refused, refused, refused, refused)
    with pytest.raises(APIConnectionError, match="check EASEL_URL"):
        easel.usage()
    assert len(requests) == 4 and len(sleeps) == 3

    # Cut off after sending: a promote may have happened, so it is not sent again.
    easel, requests, _ = scripted(httpx.ReadTimeout("timed out"))
    with pytest.raises(APIConnectionError, match="may have been applied"):
        easel.categories.promote("mugs", 3)
    assert len(requests) == 1


@pytest.mark.parametrize(
    ("status", "code", "exception"),
    [
        (400, "invalid", ValidationError),
        (401, "authentication_failed", AuthenticationError),
        (403, "permission_denied", PermissionDenied),
        (404, "not_found", NotFound),
        (409, "conflict", Conflict),
    ],
)
def test_errors_carry_the_apis_code_message_fields_and_status(status, code, exception):
    fields = {"steps": "Ensure this value is less than or equal to 100."} if status == 400 else {}
    easel, requests, _ = scripted(error(status, code, "What went wrong.", fields=fields))
    with pytest.raises(exception) as caught:
        easel.generations.get(JOB["id"])
    assert (caught.value.status, caught.value.code) == (status, code)
    assert caught.value.message == "What went wrong." and caught.value.fields == fields
    assert len(requests) == 1  # a 4xx other than 429 is never retried


def test_a_non_json_error_still_says_what_happened():
    easel, _, _ = scripted(
        *(httpx.Response(502, text="<html>Bad gateway</html>") for _ in range(4))
    )
    with pytest.raises(ServerError) as caught:
        easel.generations.get(JOB["id"])
    assert caught.value.code == "http_502" and "Bad Gateway" in caught.value.message


def test_pages_follow_the_next_cursor_on_the_clients_own_host():
    pages = [
        {
            "next": "http://internal:8000/api/v1/generations?cursor=abc&page_size=1",
            "results": [JOB],
        },
        {"next": None, "results": [JOB | {"id": "second"}]},
    ]
    easel, requests, _ = scripted(*(httpx.Response(200, json=p) for p in pages))
    ids = [job.id for job in easel.generations.list(status="succeeded", page_size=1)]
    assert ids == [JOB["id"], "second"]
    assert [str(r.url) for r in requests] == [
        f"{API}/api/v1/generations?status=succeeded&page_size=1",
        f"{API}/api/v1/generations?cursor=abc&page_size=1",
    ]


def test_wait_gives_up_at_the_timeout_with_the_last_state():
    easel, _, _ = scripted(httpx.Response(200, json=JOB | {"status": "running"}))
    with pytest.raises(WaitTimeout) as caught:
        easel.generations.wait(JOB["id"], timeout=0)
    assert caught.value.last.status == "running"


def test_a_download_is_checked_against_its_sha256_and_presigned_links_get_no_api_key(tmp_path):
    png = b"\x89PNG fake image bytes"
    image = {"id": "img-1", "index": 0, "sha256": hashlib.sha256(png).hexdigest(), "url": "x"}
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/images/img-1/download"):
            return httpx.Response(
                302, headers={"Location": "http://s3.test/bucket/img-1.png?sig=1"}
            )
        if request.url.host == "s3.test":
            return httpx.Response(200, content=png)
        raise AssertionError(request.url)

    easel, _, _ = _client(handler, [])
    job = JOB | {"status": "succeeded", "images": [image]}
    (saved,) = easel.generations.download(from_api(Generation, job), tmp_path)
    assert saved.name == f"{JOB['id']}-0.png" and saved.read_bytes() == png
    api, s3 = seen
    assert api.headers["Authorization"] == "Bearer esl_test_key"
    assert "Authorization" not in s3.headers

    corrupted = from_api(Generation, job | {"images": [image | {"sha256": "0" * 64}]})
    with pytest.raises(EaselError, match="SHA-256 mismatch"):
        easel.generations.download(corrupted, tmp_path / "again")
    assert not list((tmp_path / "again").iterdir())


def test_a_retried_photo_upload_sends_every_photo_again_and_reports_progress_once_through():
    photos = [(f"star-{i}.png", bytes([i]) * 1000) for i in range(3)]
    easel, requests, _ = scripted(error(503, "unavailable"), httpx.Response(202, json=JOB))
    progress: list[tuple[int, int]] = []
    easel.trainings.create(
        category="stars",
        rare_token="sks",
        class_prompt="a star",
        photos=photos,
        params={"max_steps": 4},
        on_upload=lambda sent, total: progress.append((sent, total)),
    )
    assert len(requests) == 2
    assert requests[0].headers["Idempotency-Key"] == requests[1].headers["Idempotency-Key"]
    for request in requests:
        body = request.content
        assert all(name.encode() in body and data in body for name, data in photos)
        assert b'{"max_steps": 4}' in body
    assert progress[-1] == (3000, 3000) and all(0 <= sent <= 3000 for sent, _ in progress)
