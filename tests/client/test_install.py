"""``pip install ./client`` alone makes a working client: a copy of the folder, outside the
repository, installs into a fresh virtual environment (pip fetches httpx and rich from the package
index), brings no Django, and its ``easel`` command talks to the live server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[2]
INSTALL_SECONDS = 300


def test_the_client_installs_alone_into_a_fresh_venv_and_its_cli_works(
    owner, live_server, tmp_path
):
    source = tmp_path / "client"
    shutil.copytree(
        REPO / "client", source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # The project's pip installs into the new environment (--python): no ensurepip needed.
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", str(source)],
        capture_output=True,
        text=True,
        timeout=INSTALL_SECONDS,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr

    probe = "import importlib.util, easel_client; print(importlib.util.find_spec('django'))"
    imported = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    assert (imported.returncode, imported.stdout.strip()) == (0, "None"), imported.stderr

    environment = {k: v for k, v in os.environ.items() if not k.startswith("EASEL_")}
    environment |= {"EASEL_API_KEY": owner.api_key, "EASEL_URL": live_server.url}
    environment["EASEL_CONFIG"] = str(tmp_path / "none.toml")
    usage = subprocess.run(
        [str(venv / "bin" / "easel"), "--json", "usage"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert usage.returncode == 0, usage.stderr
    assert json.loads(usage.stdout)["organization"]["slug"] == owner.org.slug
