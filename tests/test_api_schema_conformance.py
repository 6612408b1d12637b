"""The API keeps its own OpenAPI schema: schemathesis generates requests (valid and invalid) for
every operation of ``/api/schema/`` and sends them in-process to the WSGI app, authenticated with
an API key that holds every scope. No response may be a 5xx, break the documented body schema, or
use a status code or content type the operation does not document.

Real rows exist first (a category with two promoted versions and an empty one, a template, a
pending and a finished job with an image, a webhook with a delivery, a spare API key), about half
of the generated path ids name one of them, and a few operations also get a body known to
succeed, so the detail, edit, action and create operations get past their 404s and 400s.
"""

from __future__ import annotations

import io
import ipaddress
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from unittest import mock

import hypothesis
import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from django.utils import timezone
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from catalog.imports import catalog_import
from catalog.runs import catalog_run_create
from catalog.schedules import catalog_schedule_create
from catalog.services import catalog_create
from generation.models import GenerationJob, JobStatus
from generation.services import generation_job_create
from generation.template_services import prompt_template_create
from models_registry import services as registry_services
from tenants import quotas, webhooks
from tenants import services as tenant_services
from tenants.models import AuditEvent
from tenants.roles import Action, Role

from .factories import make_image_row, make_org, make_persona
from .registry.conftest import write_fake_lora

CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
]
# Cases per operation (~50 operations, ~45 s in all on 2 cores). Derandomized and without the
# example database, so every run and every machine sends the same requests.
MAX_EXAMPLES = 20
# Webhook URLs "resolve" to this public address: the test needs no DNS.
PUBLIC_ADDRESS = ipaddress.ip_address("93.184.216.34")


@pytest.fixture
def api_data(db, tiny_base_model, tmp_path) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The owner's every-scope key, one of each object, and the path ids that name them."""
    org, owner, team = make_org("acme")
    persona = make_persona(org, owner, team, Role.OWNER)
    assert set(persona.principal.actions) == set(Action.values)
    category = registry_services.category_create(
        actor=owner, slug="produce", name="Produce", base_model=tiny_base_model
    )
    empty_category = registry_services.category_create(actor=owner, slug="empty", name="Empty")
    # Two versions promoted in turn, so that production has something to roll back to.
    for name in ("first", "second"):
        version = registry_services.model_version_register(
            actor=owner,
            category=category,
            base=tiny_base_model,
            kind="lora",
            source_path=write_fake_lora(tmp_path / f"{name}.safetensors"),
        )
        registry_services.alias_promote(actor=owner, category=category, version=version)
    template = prompt_template_create(actor=owner, application="hero", text="a photo of {item}")
    catalog = catalog_create(actor=owner, slug="spring")
    catalog_file = io.BytesIO(b"sku,name,category\nA-1,Apple,produce\n")
    imported = catalog_import(actor=owner, catalog=catalog, stream=catalog_file, file_name="a.csv")
    run = catalog_run_create(actor=owner, catalog=catalog, mode="all")
    schedule = catalog_schedule_create(actor=owner, catalog=catalog, interval_minutes=60)
    with mock.patch("generation.tasks.enqueue_generation"):
        pending, finished = (
            generation_job_create(actor=owner, data={"prompt": p, "model": "tiny"})
            for p in ("an apple", "a pear")
        )
    GenerationJob.objects.filter(pk=finished.pk).update(
        status=JobStatus.SUCCEEDED, progress=1.0, finished_at=timezone.now()
    )
    image = make_image_row(finished)
    # Not the key the requests use: the generated requests revoke every key they can name.
    spare_key, _raw = tenant_services.api_key_create(
        actor=owner, team=team, name="spare", scopes=[Action.VIEW]
    )
    with mock.patch("tenants.net.resolve", return_value=[PUBLIC_ADDRESS]):
        endpoint, _secret = webhooks.webhook_endpoint_create(
            actor=owner, url="https://hooks.example.com/easel", events=["job.succeeded"]
        )
        delivery = webhooks.webhook_endpoint_ping(actor=owner, endpoint=endpoint)
        audit_event = AuditEvent.objects.filter(organization=org).latest("at")
        known = {
            "/api/v1/api-keys/{id}": [{"id": spare_key.pk}],
            "/api/v1/audit-events/{id}": [{"id": audit_event.pk}],
            "/api/v1/base-models/{name}": [{"name": tiny_base_model.name}],
            "/api/v1/catalog-imports/{id}": [{"id": imported.pk}],
            "/api/v1/catalog-runs/{id}": [{"id": str(run.pk)}],
            "/api/v1/catalogs/{slug}": [{"slug": catalog.slug}],
            "/api/v1/categories/{slug}": [{"slug": category.slug}, {"slug": empty_category.slug}],
            "/api/v1/generations/{id}": [{"id": str(pending.id)}, {"id": str(finished.id)}],
            "/api/v1/images/{id}": [{"id": str(image.id)}],
            "/api/v1/model-versions/{id}": [{"id": version.pk}],
            "/api/v1/schedules/{id}": [{"id": schedule.pk}],
            "/api/v1/teams/{id}": [{"id": team.pk}],
            "/api/v1/templates/{application}": [{"application": template.application}],
            "/api/v1/webhook-deliveries/{id}": [{"id": delivery.pk}],
            "/api/v1/webhooks/{id}": [{"id": endpoint.pk}],
        }
        # Bodies that succeed, so the creates' and actions' 2xx bodies are checked too (random
        # ones rarely name a real model or a public URL).
        valid_bodies = {
            "POST /api/v1/api-keys": {
                "name": "ci",
                "scopes": [Action.VIEW],
                "expires_at": (timezone.now() + timedelta(days=7)).isoformat(),
            },
            "POST /api/v1/generations": {"prompt": "an apple", "model": "tiny", "steps": 2},
            "POST /api/v1/webhooks": {
                "url": "https://hooks.example.com/b",
                "events": ["job.failed"],
            },
            "POST /api/v1/categories/{slug}/promote": {"version": version.pk},
            "POST /api/v1/catalogs": {"slug": "autumn"},
            "POST /api/v1/catalog-runs": {"catalog": catalog.slug, "mode": "missing"},
            "POST /api/v1/schedules": {"catalog": catalog.slug, "cron": "0 6 * * 1"},
            "POST /api/v1/templates/{application}/render": {"variables": {"item": "a pear"}},
        }
        yield {
            "key": persona.api_key,
            "owner": owner,
            "known": known,
            "valid_bodies": valid_bodies,
        }


@pytest.fixture
def wsgi_app() -> Iterator[Any]:
    """The real WSGI application, minus closing the connection after each request: the test's
    rows live in this connection's transaction (Django's test client disconnects it the same way).
    """
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def _operation_failures(
    operation: Any, *, key: str, known: list[dict[str, Any]], valid_body: Any
) -> list[str]:
    """Send ``MAX_EXAMPLES`` generated requests to one operation; a report per distinct failure.

    Hand-rolled over ``as_strategy`` rather than schemathesis' pytest integration, whose
    ``from_fixture`` fails under pytest 9 (it uses ``Node._nodeid``, gone there), and so that every
    operation runs and the test reports all failures at once.
    """
    strategies = [
        operation.as_strategy(mode, path_parameters=ids)
        for mode in GenerationMode
        for ids in [None, *known]
    ]
    if valid_body is not None:
        strategies += [
            operation.as_strategy(path_parameters=ids, body=valid_body) for ids in known or [None]
        ]
    found: dict[tuple[str, str], str] = {}

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        # No shrinking: every failing request is reported as sent, and a failure costs no reruns.
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=st.one_of(strategies))
    def run(case: Any) -> None:
        # Every case starts from the same rows: what it changed (or a database error it caused)
        # is rolled back before the next one.
        savepoint = transaction.savepoint()
        try:
            case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)
        except FailureGroup as group:
            for failure in group.exceptions:
                found.setdefault((failure.title, failure.message), str(group))
        finally:
            transaction.savepoint_rollback(savepoint)

    run()
    return [f"{operation.label}: {title}\n{report}" for (title, _), report in found.items()]


def test_every_response_matches_the_openapi_schema(api_data, wsgi_app, settings) -> None:  # type: ignore[no-untyped-def]
    # ~1000 requests in half a minute would meet the rate limits part way (a 429 is documented,
    # but the rest of the run would test nothing else); the next test checks their 429.
    for rate in ("PER_KEY", "WRITES_PER_KEY", "PER_ORG"):
        setattr(settings, f"EASEL_RATE_LIMIT_{rate}", "")
    schema = schemathesis.openapi.from_wsgi("/api/schema/", wsgi_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 45
    failures: list[str] = []
    for operation in operations:
        known = next(
            (ids for path, ids in api_data["known"].items() if operation.path.startswith(path)),
            [],
        )
        failures += _operation_failures(
            operation,
            key=api_data["key"],
            known=known,
            valid_body=api_data["valid_bodies"].get(operation.label),
        )
    assert not failures, f"{len(failures)} failures:\n\n" + "\n\n".join(failures)


def test_rate_limit_quota_and_missing_key_errors_match_the_schema(
    api_data, wsgi_app, settings
) -> None:  # type: ignore[no-untyped-def]
    """The errors the generated requests do not reach: the 429s of a rate limit and of a quota,
    with their Retry-After, and a 401."""
    schema = schemathesis.openapi.from_wsgi("/api/schema/", wsgi_app)
    auth = {"Authorization": f"Bearer {api_data['key']}"}
    me = schema["/api/v1/me"]["GET"]
    assert me.Case().call_and_validate(checks=CHECKS).status_code == 401
    settings.EASEL_RATE_LIMIT_PER_KEY = "1/hour"
    assert me.Case().call_and_validate(headers=auth, checks=CHECKS).status_code == 200
    limited = me.Case().call_and_validate(headers=auth, checks=CHECKS)
    assert limited.status_code == 429 and int(limited.headers["retry-after"][0]) >= 1

    settings.EASEL_RATE_LIMIT_PER_KEY = ""
    owner = api_data["owner"]
    quotas.quota_set(actor=owner, org=owner.org, images_per_day=0, gpu_seconds_per_month=None)
    create = schema["/api/v1/generations"]["POST"]
    body = api_data["valid_bodies"]["POST /api/v1/generations"]
    refused = create.Case(body=body).call_and_validate(headers=auth, checks=CHECKS)
    assert refused.status_code == 429 and int(refused.headers["retry-after"][0]) >= 1
