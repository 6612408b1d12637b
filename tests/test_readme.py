"""The README's permission table says exactly what the code enforces."""

from __future__ import annotations

import re
from pathlib import Path

from tenants.roles import ROLE_ACTIONS, Role

README = Path(__file__).resolve().parents[1] / "README.md"


def test_permission_table_matches_role_actions():
    rows = re.findall(r"^\| `(\w+)` — [^|]+\|(.+)\|$", README.read_text(), flags=re.M)
    assert rows, "permission table not found in README.md"
    documented = {}
    for action, cells in rows:
        marks = [c.strip() == "✓" for c in cells.split("|")]
        documented[action] = {role for role, mark in zip(Role.values, marks, strict=True) if mark}
    expected = {
        action: {role for role in Role.values if action in ROLE_ACTIONS[role]}
        for action in {a for acts in ROLE_ACTIONS.values() for a in acts}
    }
    assert documented == expected


def test_every_setting_read_from_the_environment_is_documented():
    settings_dir = Path(__file__).resolve().parents[1] / "config" / "settings"
    source = "".join(p.read_text() for p in settings_dir.glob("*.py"))
    names = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]+)"', source))
    names |= set(re.findall(r'_secret\(\s*"([A-Z][A-Z0-9_]+)"', source))
    assert len(names) > 20
    readme = README.read_text()
    missing = sorted(name for name in names if f"`{name}`" not in readme)
    assert missing == []
