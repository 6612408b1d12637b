"""Process-level facts about generation: the web side never imports torch, and the embedded
filesystem broker routes interactive and bulk jobs to their own queues."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(code: str, tmp_path: Path) -> dict:
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "EASEL_VAR_DIR": str(tmp_path),
        "CELERY_BROKER_URL": "filesystem://",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "EASEL_STORAGE": "local",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_web_modules_of_generation_never_import_torch(tmp_path):
    facts = _run(
        "import django, json, sys; django.setup();"
        "import config.urls, generation.api.urls, generation.services, generation.selectors,"
        " generation.tasks, generation.worker, generation.scheduling, generation.running,"
        " generation.finishing, generation.transitions, generation.storage;"
        "print(json.dumps({'torch': 'torch' in sys.modules,"
        " 'diffusers': 'diffusers' in sys.modules}))",
        tmp_path,
    )
    assert facts == {"torch": False, "diffusers": False}


def test_filesystem_broker_routes_interactive_and_bulk_to_their_queues(tmp_path):
    queue_dir = tmp_path / "broker" / "queue"
    queue_dir.mkdir(parents=True)
    (tmp_path / "broker" / "processed").mkdir()
    facts = _run(
        "import django, json, os; django.setup();"
        "from generation.tasks import run_generation_interactive, run_generation_bulk;"
        "run_generation_interactive.delay('job-i'); run_generation_bulk.delay('job-b');"
        f"names = sorted(os.listdir({str(queue_dir)!r}));"
        "print(json.dumps({'names': names}))",
        tmp_path,
    )
    queues = sorted(name.split(".")[-2] for name in facts["names"])
    assert queues == ["bulk", "interactive"]
    bodies = {name.split(".")[-2]: (queue_dir / name).read_text() for name in facts["names"]}
    assert "job-i" in bodies["interactive"] and "job-b" in bodies["bulk"]
