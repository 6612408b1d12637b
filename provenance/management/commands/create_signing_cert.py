"""``manage.py create_signing_cert [--out DIR | --for-org SLUG]``: a certificate chain for signing
content credentials in development and tests — a root CA and a signing certificate it issued
(ES256 or PS256, with the key usages C2PA requires) — written as ``chain.pem``, ``key.pem``
(0600) and ``root.pem``, checked by signing and verifying a small PNG, and the settings that use
it printed. Verifiers trust it only where ``root.pem`` is a trust anchor: production wants a
certificate from a CA on the C2PA trust list.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from PIL import Image

from provenance.engine import content_credentials
from provenance.engine.certificates import (
    ALGORITHMS,
    CHAIN_FILE,
    KEY_FILE,
    ROOT_FILE,
    CertificateChain,
    certificate_summary,
    development_chain,
)
from provenance.engine.manifest import TRAINED_ALGORITHMIC_MEDIA


def _self_test(chain: CertificateChain) -> str:
    """Sign a 16×16 PNG with the chain and read it back trusting its root: the state."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 40, 40)).save(buffer, format="PNG")
    signer = content_credentials.make_signer(chain_pem=chain.chain_pem, key_pem=chain.key_pem)
    definition = {
        "claim_generator_info": [{"name": "Easel", "version": "create_signing_cert"}],
        "title": "self-test.png",
        "format": "image/png",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA}
                    ]
                },
            }
        ],
    }
    signed = content_credentials.sign(
        buffer.getvalue(), mime_type="image/png", definition=definition, signer=signer
    )
    report = content_credentials.read(
        signed, mime_type="image/png", trust_anchors_pem=chain.root_pem.decode()
    )
    return report.state


class Command(BaseCommand):
    help = "Make a development certificate chain for signing content credentials."

    def add_arguments(self, parser: CommandParser) -> None:
        where = parser.add_mutually_exclusive_group()
        where.add_argument("--out", type=Path, help="folder to write (default: var/provenance)")
        where.add_argument(
            "--for-org",
            metavar="SLUG",
            help="write into EASEL_PROVENANCE_ORG_CREDENTIALS_DIR/SLUG: that organization's "
            "images are then signed with it",
        )
        parser.add_argument("--organization", default="Easel development", help="subject O=")
        parser.add_argument("--common-name", default="Easel content credentials", help="CN=")
        parser.add_argument("--algorithm", choices=ALGORITHMS, default="es256")
        parser.add_argument("--days", type=int, default=825, help="signing certificate validity")
        parser.add_argument("--force", action="store_true", help="replace an existing chain")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["for_org"]:
            base = settings.EASEL_PROVENANCE_ORG_CREDENTIALS_DIR
            if not base:
                raise CommandError("Set EASEL_PROVENANCE_ORG_CREDENTIALS_DIR first.")
            out = Path(base) / options["for_org"]
        else:
            out = options["out"] or Path(settings.EASEL_PROVENANCE_DEV_CERT_DIR)
        if (out / KEY_FILE).exists() and not options["force"]:
            raise CommandError(
                f"{out} already holds a chain; images signed with it would no longer verify as "
                "trusted once it is replaced. Pass --force to replace it anyway."
            )
        if options["days"] < 1:
            raise CommandError("--days must be at least 1.")
        chain = development_chain(
            organization=options["organization"],
            common_name=options["common_name"],
            algorithm=options["algorithm"],
            days=options["days"],
        )
        chain.write(out)
        state = _self_test(chain)
        if state != "Trusted":
            raise CommandError(f"The new chain signs, but verifying read it as {state!r}.")
        summary = certificate_summary(chain.chain_pem)
        self.stdout.write(
            f"Wrote {out / CHAIN_FILE}, {out / KEY_FILE} and {out / ROOT_FILE}\n"
            f"  signing certificate: {summary['subject']}, issued by {summary['issuer']}, "
            f"valid until {summary['not_after']}\n"
            f"  self-test: signed a PNG and verified it as {state}\n"
        )
        if options["for_org"]:
            self.stdout.write(f"Images of {options['for_org']} are signed with it from now on.\n")
        else:
            self.stdout.write(
                "Use it with:\n"
                f"  EASEL_PROVENANCE_CERT_CHAIN_FILE={out / CHAIN_FILE}\n"
                f"  EASEL_PROVENANCE_PRIVATE_KEY_FILE={out / KEY_FILE}\n"
                f"  EASEL_PROVENANCE_TRUST_ANCHORS_FILE={out / ROOT_FILE}\n"
            )
