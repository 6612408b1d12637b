"""``manage.py gate_pass_rate`` on the trained ``shapes`` model: it renders the demo template's
prompts, judges them as the worker does, refines the failures, and reports the rates with the
controls (noise, blank, wrong colour) failing."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_the_command_reports_first_and_after_loop_rates_and_the_controls_fail(shapes_base_model):
    out = io.StringIO()
    call_command("gate_pass_rate", seeds=1, attempts=2, threads=2, stdout=out)
    text = out.getvalue()
    first = float(re.search(r"first attempt: ([\d.]+)%", text).group(1))
    after = float(re.search(r"within 2 attempts: ([\d.]+)%", text).group(1))
    assert 0 < first <= after <= 100
    assert "controls passed (must be 0%): noise 0%, blank 0%, wrong colour 0%" in text
