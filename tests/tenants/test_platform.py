"""Health, OpenAPI schema, management commands and production settings."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from tenants import health
from tenants.models import ApiKey, Organization

ROOT = Path(__file__).resolve().parents[2]


READINESS_TOKEN = "r" * 20 + "9Zq!x" * 4
RAW_ERROR = "could not connect to server at db.internal:5432 as user easel_admin"


class _DatabaseDown(Exception):
    pass


@pytest.fixture
def database_down():  # type: ignore[no-untyped-def]
    def fail() -> None:
        raise _DatabaseDown(RAW_ERROR)

    with mock.patch.dict(health.CHECKS, {"database": fail}):
        yield


def test_healthz_is_liveness_only_and_reveals_nothing(client, database_down):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_refuses_callers_without_staff_session_or_token(client, settings, database_down):
    settings.EASEL_READINESS_TOKEN = READINESS_TOKEN
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": "Bearer "}):
        response = client.get("/readyz", **headers)
        assert response.status_code == 403, headers
        assert "checks" not in response.json() and RAW_ERROR not in response.content.decode()


def test_readyz_without_a_configured_token_accepts_no_bearer(client, settings):
    settings.EASEL_READINESS_TOKEN = ""
    assert client.get("/readyz", HTTP_AUTHORIZATION="Bearer ").status_code == 403


@pytest.mark.django_db
def test_readyz_with_the_token_reports_database_broker_and_storage(client, settings):
    settings.EASEL_READINESS_TOKEN = READINESS_TOKEN
    response = client.get("/readyz", HTTP_AUTHORIZATION=f"Bearer {READINESS_TOKEN}")
    body = response.json()
    assert set(body["checks"]) == {"database", "broker", "storage"}
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert all(check["ok"] and check["ms"] >= 0 for check in body["checks"].values())


def test_readyz_with_the_token_names_the_error_class_but_never_the_message(
    client, settings, database_down
):
    settings.EASEL_READINESS_TOKEN = READINESS_TOKEN
    response = client.get("/readyz", HTTP_AUTHORIZATION=f"Bearer {READINESS_TOKEN}")
    assert response.status_code == 503
    database = response.json()["checks"]["database"]
    assert database["ok"] is False and database["error"] == "_DatabaseDown"
    assert "ms" in database
    assert "db.internal" not in response.content.decode()


@pytest.mark.django_db
def test_readyz_shows_staff_the_error_message(client, database_down):
    staff = get_user_model().objects.create_user("ops", password="pw-ops-12345", is_staff=True)
    client.force_login(staff)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert RAW_ERROR in response.json()["checks"]["database"]["message"]


@pytest.mark.django_db
def test_readyz_refuses_a_signed_in_person_who_is_not_staff(client, owner):
    client.force_login(owner.user)
    assert client.get("/readyz").status_code == 403


def test_openapi_schema_generates_without_warnings():
    out = StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    assert "/api/v1/api-keys" in out.getvalue()


@pytest.mark.django_db
def test_create_organization_prints_a_working_key_once(client):
    out = StringIO()
    call_command("create_organization", "Initech", owner="peter", password="pw-1234567", stdout=out)
    org = Organization.objects.get(slug="initech")
    raw = out.getvalue().split("store it now): ")[1].strip()
    response = client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.json()["organization"]["slug"] == "initech"
    assert ApiKey.objects.filter(organization=org).count() == 1


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_its_key_works(client, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    first, second = StringIO(), StringIO()
    call_command("seed_demo", stdout=first)
    call_command("seed_demo", stdout=second)
    assert Organization.objects.filter(slug="demo").count() == 1
    org = Organization.objects.get(slug="demo")
    assert org.memberships.count() == 4 and org.teams.count() == 2
    assert ApiKey.objects.filter(organization=org, revoked_at=None).count() == 1
    raw = (tmp_path / "demo-api-key.txt").read_text().strip()
    assert raw in second.getvalue()
    assert client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {raw}").json()["team"]["slug"] == (
        "marketing"
    )
    # The demo catalog: every row of its file imported, unchanged the second time.
    from catalog.models import Catalog

    catalog = Catalog.objects.get(organization=org, slug="demo")
    assert catalog.products.count() == 12
    latest = catalog.imports.order_by("-created_at").first()
    assert (latest.rows_unchanged, latest.rows_rejected) == (12, 0)


def test_seed_demo_refuses_to_run_under_production_settings(tmp_path):
    database = tmp_path / "db.sqlite3"
    result = _run_production(
        ["seed_demo"],
        {
            "SECRET_KEY": "k" * 20 + "9Zq!x" * 8,
            "DATABASE_URL": f"sqlite:///{database}",
            "EASEL_VAR_DIR": str(tmp_path),
            "EASEL_PROVENANCE_SIGN": "0",  # past provenance's start-up check, to seed_demo's own
        },
    )
    assert result.returncode != 0
    assert "seed_demo creates people with a published password" in result.stderr
    assert not (tmp_path / "demo-api-key.txt").exists()


def _run_production_check(extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return _run_production(["check", "--deploy", "--fail-level", "WARNING"], extra_env)


def _run_production(args: list[str], extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env |= {"DJANGO_SETTINGS_MODULE": "config.settings.production"} | extra_env
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_production_refuses_to_start_without_secret_key():
    result = _run_production_check({})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_passes_check_deploy_with_no_warnings(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("k" * 20 + "9Zq!x" * 8)
    from provenance.engine.certificates import development_chain

    development_chain().write(tmp_path / "chain")  # production signs with a configured chain
    result = _run_production_check(
        {
            "SECRET_KEY_FILE": str(secret_file),
            "EASEL_PROVENANCE_CERT_CHAIN_FILE": str(tmp_path / "chain" / "chain.pem"),
            "EASEL_PROVENANCE_PRIVATE_KEY_FILE": str(tmp_path / "chain" / "key.pem"),
        }
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
