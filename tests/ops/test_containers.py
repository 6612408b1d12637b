"""The container files hold what docs/operations.md promises. No Docker engine runs here, so the
images are not built: these read the files, and compose's own parser checks the compose file
(`docker compose config`, or Debian's docker-compose; .ci/run installs one when neither is there).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
SECRET = re.compile(r"SECRET|PASSWORD|TOKEN|AUTH|ACCESS_KEY")
REQUIRED = {
    "SECRET_KEY",
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
    "S3_ACCESS_KEY",
    "S3_SECRET_KEY",
    "EASEL_METRICS_TOKEN",
    "FLOWER_BASIC_AUTH",
}


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_no_secret_has_a_default_and_each_is_required():
    text = COMPOSE.read_text()
    references = re.findall(r"\$\{([A-Z0-9_]+)(:?[-?+])?", text)
    secrets = {name: op for name, op in references if SECRET.search(name)}
    assert set(secrets) == REQUIRED
    defaulted = {name for name, op in references if SECRET.search(name) and op != ":?"}
    assert defaulted == set(), f"secrets with a default or none required: {defaulted}"


def test_the_s3_server_accepts_only_the_configured_identity():
    s3 = _compose()["services"]["s3"]
    command = " ".join(s3["command"])
    assert "-s3.config=" in command and '"accessKey":"%s"' in command
    assert set(s3["environment"]) == {"S3_ACCESS_KEY", "S3_SECRET_KEY"}


def test_long_running_services_have_health_checks_and_state_lives_in_named_volumes():
    compose = _compose()
    services = compose["services"]
    assert set(services) >= {
        "postgres",
        "redis",
        "s3",
        "web",
        "gpu_worker",
        "cpu_worker",
        "beat",
        "flower",
    }
    for name, service in services.items():
        if name != "init":
            assert "healthcheck" in service, name
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in compose["volumes"], (name, volume)
    assert "gunicorn" in (DOCKER / "Dockerfile").read_text()
    assert "ports" not in services["postgres"] and "ports" not in services["redis"]


def test_gpu_workers_reserve_a_device_and_get_time_to_finish_a_batch():
    services = _compose()["services"]
    for name in ("gpu_worker", "train_worker"):
        service = services[name]
        [device] = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
        assert device["device_ids"] == [service["environment"]["CUDA_VISIBLE_DEVICES"]]
        assert "--pool" in service["command"] and "solo" in service["command"]
        assert service["stop_grace_period"] == "10m"


def test_images_run_as_a_user_collect_static_files_and_pin_the_same_torch():
    requirements = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^torch==\d", requirements, flags=re.M)
    cpu, gpu = (DOCKER / "Dockerfile").read_text(), (DOCKER / "Dockerfile.gpu").read_text()
    for dockerfile in (cpu, gpu):
        users = re.findall(r"^USER (\S+)", dockerfile, flags=re.M)
        assert users and users[-1] not in ("root", "0")
        # torch's version is read from requirements.txt, never written twice.
        assert "grep -E '^torch==' /tmp/requirements.txt" in dockerfile
    assert "collectstatic --noinput" in cpu
    assert "download.pytorch.org/whl/cpu" in cpu
    assert re.search(r"^ARG CUDA_IMAGE=nvidia/cuda:\S+", gpu, flags=re.M)
    assert re.search(r"^ARG TORCH_INDEX=https://download\.pytorch\.org/whl/cu\d+$", gpu, re.M)


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_parses_and_refuses_to_start_without_its_secrets():
    command = _compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor docker-compose here (.ci/run installs one)")
    check = [*command, "-f", str(COMPOSE), "--profile", "gpu", "--profile", "cpu-only", "config"]
    clean = {k: v for k, v in os.environ.items() if k not in REQUIRED}
    secrets = dict.fromkeys(REQUIRED, "test-only") | {"FLOWER_BASIC_AUTH": "t:test-only"}
    ok = subprocess.run([*check, "-q"], env=clean | secrets, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    missing = subprocess.run([*check, "-q"], env=clean, capture_output=True, text=True)
    assert missing.returncode != 0 and "in docker/.env" in missing.stderr + missing.stdout
