"""System checks (``manage.py check``, and at the start of runserver and migrate): the
content-credentials certificate is usable, and — under ``check --deploy`` — it is not the
development one."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured


@checks.register("provenance")
def signing_certificate_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if not settings.EASEL_PROVENANCE_SIGN:
        return []
    chain, key = settings.EASEL_PROVENANCE_CERT_CHAIN, settings.EASEL_PROVENANCE_PRIVATE_KEY
    if not chain and not key:
        if settings.EASEL_PROVENANCE_DEV_CERT:
            return []  # made at first use; --deploy warns below
        from .credentials import NOT_CONFIGURED

        return [checks.Error(NOT_CONFIGURED, id="provenance.E001")]
    try:
        from .credentials import signer_for

        signer_for()
    except (ImproperlyConfigured, RuntimeError, ValueError) as exc:
        return [
            checks.Error(
                f"The platform's content-credentials certificate is unusable: {exc}",
                hint="Check EASEL_PROVENANCE_CERT_CHAIN (signing certificate first, PEM) and "
                "EASEL_PROVENANCE_PRIVATE_KEY (the matching PKCS#8 key, PEM, no passphrase).",
                id="provenance.E002",
            )
        ]
    return []


@checks.register("provenance", deploy=True)
def development_certificate_check(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    configured = settings.EASEL_PROVENANCE_CERT_CHAIN and settings.EASEL_PROVENANCE_PRIVATE_KEY
    if settings.EASEL_PROVENANCE_SIGN and settings.EASEL_PROVENANCE_DEV_CERT and not configured:
        return [
            checks.Warning(
                "Images will be signed with a development certificate that no verifier outside "
                "this installation trusts.",
                hint="Set EASEL_PROVENANCE_CERT_CHAIN and EASEL_PROVENANCE_PRIVATE_KEY, and "
                "EASEL_PROVENANCE_DEV_CERT=0.",
                id="provenance.W001",
            )
        ]
    return []
