"""Structured logs (``EASEL_LOG_FORMAT=json``): every line carries the request id, the
organization and the job id it was written for, through the settings' own filter and formatter."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Callable, Iterator

import pytest
from django.conf import settings
from pythonjsonlogger.json import JsonFormatter

from generation import services, worker
from generation.models import JobStatus
from tenants.logcontext import ContextFilter


@pytest.fixture
def json_lines() -> Iterator[Callable[[], list[dict]]]:
    """The root logger's records as the settings' JSON console handler writes them."""
    options = {k: v for k, v in settings.LOGGING["formatters"]["json"].items() if k != "()"}
    assert settings.LOGGING["formatters"]["json"]["()"] == "pythonjsonlogger.json.JsonFormatter"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(**options))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)


@pytest.mark.django_db
def test_a_request_log_line_carries_the_request_id_and_the_organization(
    client_for, owner, json_lines
):
    response = client_for(owner).get(
        f"/api/v1/generations/{uuid.uuid4()}", HTTP_X_REQUEST_ID="req-0123456789abcdef"
    )
    assert response.status_code == 404
    assert response["X-Request-ID"] == "req-0123456789abcdef"
    [line] = [x for x in json_lines() if x["logger"] == "django.request"]
    assert line["level"] == "WARNING" and line["message"].startswith("Not Found")
    assert (line["request_id"], line["organization"]) == ("req-0123456789abcdef", owner.org.slug)


@pytest.mark.django_db
def test_a_made_up_request_id_is_replaced_and_the_next_request_names_no_organization(
    client, client_for, owner, json_lines
):
    client_for(owner).get("/api/v1/me")
    response = client.get("/api/v1/no-such-route", HTTP_X_REQUEST_ID="<script>")
    assert len(response["X-Request-ID"]) == 32 and response["X-Request-ID"] != "<script>"
    [line] = [x for x in json_lines() if x["logger"] == "django.request"]
    assert line["request_id"] == response["X-Request-ID"]
    assert line["organization"] == ""  # not the previous request's


@pytest.mark.django_db
def test_a_worker_log_line_carries_the_job_and_its_organization(
    owner, tiny_base_model, enqueued, local_pipeline, json_lines
):
    local_pipeline.fail_when(lambda prompts: ValueError("the tokenizer refused the prompt."))
    job = services.generation_job_create(
        actor=owner.principal, data={"prompt": "a red apple", "model": "tiny", "steps": 2}
    )
    worker.generation_run(job_id=job.id)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    [line] = [x for x in json_lines() if x["message"] == f"generation job {job.id} failed"]
    assert (line["job_id"], line["organization"]) == (str(job.id), owner.org.slug)
    assert line["level"] == "ERROR" and "ValueError" in line["exc_info"]
