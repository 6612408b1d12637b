"""``create_signing_cert`` makes a chain that signs and verifies as trusted (and will not replace
one by accident); an organization's own chain signs its images; the system checks say when no
certificate can sign; ``watermark_report`` prints its tables."""

from __future__ import annotations

import io
import stat

import pytest
from cryptography import x509
from django.core.management import call_command
from django.core.management.base import CommandError

from provenance import checks, credentials
from provenance.engine.certificates import CertificateChain

pytestmark = pytest.mark.django_db


def _run(*args: str, **options: object) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


def test_create_signing_cert_writes_a_chain_c2pa_accepts(tmp_path):
    output = _run("create_signing_cert", "--out", str(tmp_path / "chain"), "--days", "30")
    assert "self-test: signed a PNG and verified it as Trusted" in output
    assert f"EASEL_PROVENANCE_CERT_CHAIN_FILE={tmp_path / 'chain' / 'chain.pem'}" in output
    chain = CertificateChain.read(tmp_path / "chain")
    leaf = x509.load_pem_x509_certificate(chain.chain_pem)
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert stat.S_IMODE((tmp_path / "chain" / "key.pem").stat().st_mode) == 0o600
    with pytest.raises(CommandError, match="already holds a chain"):
        _run("create_signing_cert", "--out", str(tmp_path / "chain"))
    assert "Trusted" in _run("create_signing_cert", "--out", str(tmp_path / "chain"), "--force")


def test_an_organizations_own_chain_signs_its_images(tmp_path, settings, owner, outsider):
    settings.EASEL_PROVENANCE_ORG_CREDENTIALS_DIR = str(tmp_path / "orgs")
    output = _run("create_signing_cert", "--for-org", owner.org.slug, "--organization", "Acme Inc")
    assert f"Images of {owner.org.slug} are signed with it" in output
    mine = credentials.signing_credential(org_slug=owner.org.slug)
    theirs = credentials.signing_credential(org_slug=outsider.org.slug)
    assert mine.source == f"organization {owner.org.slug}" and theirs.source == "platform"
    subject = x509.load_pem_x509_certificate(mine.chain_pem).subject.rfc4514_string()
    assert "O=Acme Inc" in subject
    root = (tmp_path / "orgs" / owner.org.slug / "root.pem").read_text().strip()
    assert root in credentials.trust_anchors()


def test_the_checks_say_when_nothing_can_sign(settings):
    assert checks.signing_certificate_check() == []
    settings.EASEL_PROVENANCE_PRIVATE_KEY = "-----BEGIN PRIVATE KEY-----\nbroken\n"
    [unusable] = checks.signing_certificate_check()
    assert unusable.id == "provenance.E002" and "unusable" in unusable.msg
    settings.EASEL_PROVENANCE_CERT_CHAIN = settings.EASEL_PROVENANCE_PRIVATE_KEY = ""
    assert checks.signing_certificate_check() == []  # the development chain will do
    [deploy] = checks.development_certificate_check()
    assert deploy.id == "provenance.W001"
    settings.EASEL_PROVENANCE_DEV_CERT = False
    [missing] = checks.signing_certificate_check()
    assert missing.id == "provenance.E001" and "EASEL_PROVENANCE_SIGN=0" in missing.msg
    settings.EASEL_PROVENANCE_SIGN = False
    assert checks.signing_certificate_check() == []


def test_watermark_report_prints_rates_and_costs():
    output = _run("watermark_report", "--images", "2", "--size", "256", "--quick")
    assert "Detection rate, 256×256 pictures" in output
    assert "photo      256×256    JPEG q90" in output
    assert "Unmarked pictures read as marked: 0 of 6" in output
    assert "sign the PNG (C2PA, ES256)" in output


def test_production_settings_flag_a_missing_certificate(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    secret = tmp_path / "secret"
    secret.write_text("k" * 20 + "9Zq!x" * 8)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECRET_KEY", "EASEL_PROV"))}
    env |= {"DJANGO_SETTINGS_MODULE": "config.settings.production", "SECRET_KEY_FILE": str(secret)}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "EASEL_PROVENANCE_CERT_CHAIN" in result.stderr + result.stdout
