"""The web process never imports torch: the URLconf and every view module load without it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("tenants", "models_registry", "generation", "training", "catalog", "studio")

PROBE = """
import importlib, json, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
import django
django.setup()
from django.urls import get_resolver
importlib.import_module("config.urls")
get_resolver().url_patterns  # resolves every include()
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
heavy = sorted(m for m in ("torch", "diffusers", "transformers", "peft") if m in sys.modules)
print(json.dumps(heavy))
"""


def _view_modules() -> list[str]:
    names = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            rel = path.relative_to(ROOT)
            parts = rel.with_suffix("").parts
            if "engine" in parts or "migrations" in parts:
                continue
            if rel.name in ("views.py", "urls.py", "serializers.py") or "views" in parts[:-1]:
                names.append(".".join(p for p in parts if p != "__init__"))
    return names


def test_urlconf_and_view_modules_do_not_import_torch():
    modules = _view_modules()
    assert "models_registry.api.views" in modules
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(modules)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [], (
        f"the web process imported heavy ML modules; checked {modules}"
    )
