"""Audit verbs are an enum: every audited action can be found by name, none made up on the fly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tenants.audit import AuditVerb
from tenants.services import audit_event_record

ROOT = Path(__file__).resolve().parents[2]
APPS = ("tenants", "models_registry", "generation", "training", "catalog", "studio")


@pytest.mark.django_db
def test_a_verb_outside_the_enum_is_refused(owner):
    with pytest.raises(ValueError, match="not a valid AuditVerb"):
        audit_event_record(org=owner.org, actor=owner.principal, verb="made.up", obj=owner.org)


def test_no_code_writes_an_audit_verb_as_a_string():
    offenders = []
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for lineno, line in enumerate(path.read_text().splitlines(), 1):
                if re.search(r"\bverb\s*=\s*f?[\"']", line):
                    offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert offenders == []


def test_every_verb_is_named_resource_dot_past_tense():
    assert all(re.fullmatch(r"[a-z_]+\.[a-z_]+", verb) for verb in AuditVerb.values)
