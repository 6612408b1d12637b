"""The ``easel`` command as a script sees it, run as a subprocess against the live server: what
``--json`` prints, which exit code each kind of failure gives, and where the key and URL come
from. No worker runs here: a submitted job stays queued, which is what the timeout needs."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.studio.conftest import make_category

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _error(result) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(result.stderr)["error"]


def test_json_output_is_the_apis_own_document_and_nothing_else(owner, easel, run_cli):
    result = run_cli("--json", "usage")
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout) == easel.usage().raw
    human = run_cli("usage")
    assert human.returncode == 0 and owner.org.slug in human.stdout
    assert "images today" in human.stdout


def test_api_errors_exit_1_with_the_apis_code_message_and_fields(run_cli):
    missing = run_cli("jobs", "show", str(uuid.uuid4()), "--json")
    assert (missing.returncode, missing.stdout) == (1, "")
    assert (_error(missing)["status"], _error(missing)["code"]) == (404, "not_found")

    invalid = run_cli("--json", "generate", "an apple", "--model", "tiny", "--steps", "1000")
    assert invalid.returncode == 1
    assert _error(invalid)["code"] == "invalid" and "steps" in _error(invalid)["fields"]

    revoked = run_cli("usage", env={"EASEL_API_KEY": "esl_nope_0000000000000000"})
    assert revoked.returncode == 1
    assert revoked.stderr.startswith("easel: error: ") and "(HTTP 401)" in revoked.stderr


def test_usage_and_configuration_errors_exit_2_and_an_unreachable_server_exits_4(run_cli):
    bad_argument = run_cli("generate", "an apple", "--steps", "many")
    assert bad_argument.returncode == 2
    assert "easel: error: usage: argument --steps: invalid int value" in bad_argument.stderr

    no_key = run_cli("--json", "usage", env={"EASEL_API_KEY": None})
    assert no_key.returncode == 2
    assert _error(no_key)["code"] == "configuration"
    assert "No API key" in _error(no_key)["message"]

    no_folder = run_cli(
        "train", "/no/such/folder", "--category", "c", "--token", "sks", "--class-prompt", "a"
    )
    assert no_folder.returncode == 2 and "is not a folder of photos" in no_folder.stderr

    unreachable = run_cli("--json", "usage", "--url", "http://127.0.0.1:9")
    assert unreachable.returncode == 4 and _error(unreachable)["code"] == "unreachable"


def test_a_wait_past_its_timeout_exits_3_with_the_jobs_last_state_then_cancel_works(
    run_cli, tiny_base_model, isolated_broker
):
    submitted = run_cli("--json", "generate", "a plum", "--model", "tiny", "--steps", "2")
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)
    assert job["status"] == "pending"  # without --wait it returns at once

    waited = run_cli("--json", "jobs", "wait", job["id"], "--timeout", "1")
    assert waited.returncode == 3
    assert json.loads(waited.stdout)["id"] == job["id"]
    timeout = _error(waited)
    assert timeout["code"] == "timeout" and "last status: pending" in timeout["message"]

    listed = run_cli("--json", "jobs", "list", "--status", "pending")
    assert [j["id"] for j in json.loads(listed.stdout)] == [job["id"]]
    canceled = run_cli("--json", "jobs", "cancel", job["id"])
    assert canceled.returncode == 0, canceled.stderr
    assert json.loads(canceled.stdout)["cancel_requested"] is True


def test_a_profile_file_supplies_the_key_and_url_and_an_explicit_profile_wins(
    owner, run_cli, live_server, tmp_path
):
    config = tmp_path / "config.toml"
    config.write_text(
        f'[default]\nurl = "{live_server.url}"\napi_key = "esl_wrong_000000000000"\n\n'
        f'[staging]\nurl = "{live_server.url}"\napi_key = "{owner.api_key}"\n'
    )
    only_file = {"EASEL_CONFIG": str(config), "EASEL_API_KEY": None, "EASEL_URL": None}
    assert run_cli("--profile", "staging", "usage", env=only_file).returncode == 0
    assert run_cli("usage", env=only_file).returncode == 1  # [default]'s key is refused
    # The environment beats the default profile; --profile beats the environment.
    assert run_cli("usage", env={"EASEL_CONFIG": str(config)}).returncode == 0
    explicit = run_cli("usage", "--profile", "default", env={"EASEL_CONFIG": str(config)})
    assert explicit.returncode == 1
    unknown = run_cli("usage", "--profile", "prod", env=only_file)
    assert unknown.returncode == 2 and "No profile [prod]" in unknown.stderr


def test_models_promote_and_rollback_move_the_alias_as_the_api_reports(owner, easel, run_cli):
    category = make_category(owner.org, slug="mugs", versions=2)
    first, second = sorted(category.versions.values_list("pk", flat=True))

    for version in (first, second):
        promoted = run_cli("--json", "models", "promote", "mugs", str(version))
        assert promoted.returncode == 0, promoted.stderr
        assert json.loads(promoted.stdout)["aliases"]["production"] == version
    rolled_back = run_cli("--json", "models", "rollback", "mugs")
    assert rolled_back.returncode == 0, rolled_back.stderr
    assert json.loads(rolled_back.stdout)["aliases"]["production"] == first

    listed = run_cli("models", "list")
    assert f"production={first}" in listed.stdout
    history = [h["action"] for h in easel.categories.alias_history("mugs")]
    assert history == ["rollback", "promote", "promote"]
    versions = [v.id for v in easel.model_versions.list(category="mugs", page_size=1)]
    assert sorted(versions) == [first, second]  # two pages of one
