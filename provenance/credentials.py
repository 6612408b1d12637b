"""Which certificate signs an organization's images, and which roots verification trusts.

In order: the organization's own chain (``EASEL_PROVENANCE_ORG_CREDENTIALS_DIR/<slug>/chain.pem``
and ``key.pem``), else the platform's (``EASEL_PROVENANCE_CERT_CHAIN`` and
``EASEL_PROVENANCE_PRIVATE_KEY``, or their ``_FILE``), else — only while
``EASEL_PROVENANCE_DEV_CERT`` is on, as on a laptop — a development chain made at first use under
``var/provenance/`` (the same files ``manage.py create_signing_cert`` writes), with a warning in
the log: verifiers outside this installation do not trust it. With none of these, storing an
image fails with a message that says what to set (and ``manage.py check`` says it at start).

Signers are built once per process and credential (c2pa-rs parses the chain and key each time
one is built); a changed file is picked up because the cache is keyed by the bytes read.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .engine.certificates import CHAIN_FILE, KEY_FILE, ROOT_FILE, CertificateChain
from .engine.certificates import development_chain as new_development_chain

if TYPE_CHECKING:
    import c2pa

logger = logging.getLogger(__name__)

NOT_CONFIGURED = (
    "Images cannot be signed: no content-credentials certificate is configured. Set "
    "EASEL_PROVENANCE_CERT_CHAIN and EASEL_PROVENANCE_PRIVATE_KEY (or their _FILE variants; "
    "`manage.py create_signing_cert` makes a chain for testing), or set "
    "EASEL_PROVENANCE_SIGN=0 to store images without content credentials."
)


@dataclass(frozen=True)
class Credential:
    chain_pem: bytes
    key_pem: bytes
    source: str  # for logs and checks: "organization acme", "platform", "development (…)"


def _text(value: str) -> bytes:
    return value.strip().encode() + b"\n"


def development_dir() -> Path:
    return Path(settings.EASEL_PROVENANCE_DEV_CERT_DIR)


def development_chain() -> CertificateChain:
    """The installation's development chain, made on first use. Processes that start together
    (web, workers) race to make it: each writes its own into a fresh folder and renames that
    into place, and the losers read the winner's, so every process signs with one chain."""
    folder = development_dir()
    if not (folder / KEY_FILE).exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".provenance-", dir=folder.parent))
        new_development_chain().write(scratch)
        try:
            os.rename(scratch, folder)
        except OSError:  # another process was first (or the folder exists without a key)
            for path in scratch.iterdir():
                path.unlink()
            scratch.rmdir()
        else:
            logger.warning("made a development content-credentials chain in %s", folder)
    return CertificateChain.read(folder)


def _organization_credential(org_slug: str) -> Credential | None:
    base = settings.EASEL_PROVENANCE_ORG_CREDENTIALS_DIR
    if not base or not org_slug:
        return None
    folder = Path(base) / org_slug
    if not (folder / CHAIN_FILE).exists():
        return None
    if not (folder / KEY_FILE).exists():
        raise ImproperlyConfigured(f"{folder} has {CHAIN_FILE} but no {KEY_FILE}.")
    return Credential(
        (folder / CHAIN_FILE).read_bytes(),
        (folder / KEY_FILE).read_bytes(),
        f"organization {org_slug}",
    )


def signing_credential(*, org_slug: str = "") -> Credential | None:
    """The credential that signs ``org_slug``'s images; None when signing is turned off."""
    if not settings.EASEL_PROVENANCE_SIGN:
        return None
    own = _organization_credential(org_slug)
    if own is not None:
        return own
    chain, key = settings.EASEL_PROVENANCE_CERT_CHAIN, settings.EASEL_PROVENANCE_PRIVATE_KEY
    if chain and key:
        return Credential(_text(chain), _text(key), "platform")
    if chain or key:
        raise ImproperlyConfigured(
            "Set both EASEL_PROVENANCE_CERT_CHAIN and EASEL_PROVENANCE_PRIVATE_KEY, not one."
        )
    if settings.EASEL_PROVENANCE_DEV_CERT:
        dev = development_chain()
        _warn_development_once(str(development_dir()))
        return Credential(dev.chain_pem, dev.key_pem, f"development ({development_dir()})")
    raise ImproperlyConfigured(NOT_CONFIGURED)


@functools.cache
def _warn_development_once(folder: str) -> None:
    logger.warning(
        "signing content credentials with the development certificate in %s: verifiers outside "
        "this installation will not trust it. Set EASEL_PROVENANCE_CERT_CHAIN and "
        "EASEL_PROVENANCE_PRIVATE_KEY to sign with your own.",
        folder,
    )


@functools.lru_cache(maxsize=32)
def _signer(chain_pem: bytes, key_pem: bytes, tsa_url: str) -> c2pa.Signer:
    from .engine.content_credentials import make_signer

    return make_signer(chain_pem=chain_pem, key_pem=key_pem, tsa_url=tsa_url)


def signer_for(*, org_slug: str = "") -> c2pa.Signer | None:
    """The (cached) signer for ``org_slug``'s images; None when signing is turned off."""
    credential = signing_credential(org_slug=org_slug)
    if credential is None:
        return None
    return _signer(credential.chain_pem, credential.key_pem, settings.EASEL_PROVENANCE_TSA_URL)


def trust_anchors() -> str:
    """PEM roots verification trusts: ``EASEL_PROVENANCE_TRUST_ANCHORS``, the ``root.pem`` of
    each organization's credentials folder, and the development root while it is in use."""
    roots = [settings.EASEL_PROVENANCE_TRUST_ANCHORS.strip()]
    base = settings.EASEL_PROVENANCE_ORG_CREDENTIALS_DIR
    if base and Path(base).is_dir():
        roots += [p.read_text().strip() for p in sorted(Path(base).glob(f"*/{ROOT_FILE}"))]
    dev_root = development_dir() / ROOT_FILE
    if settings.EASEL_PROVENANCE_DEV_CERT and dev_root.exists():
        roots.append(dev_root.read_text().strip())
    return "\n".join(r for r in roots if r) + "\n"
