"""Health, OpenAPI schema, management commands and production settings."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from tenants.models import ApiKey, Organization

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_healthz_reports_database_broker_and_storage(client):
    response = client.get("/healthz")
    body = response.json()
    assert set(body["checks"]) == {"database", "broker", "storage"}
    assert response.status_code == 200, body
    assert body["status"] == "ok"


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


def _run_production_check(extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env |= {"DJANGO_SETTINGS_MODULE": "config.settings.production"} | extra_env
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
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
    result = _run_production_check({"SECRET_KEY_FILE": str(secret_file)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
