"""Certificate chains for C2PA signing: a development chain made here (a root CA and a signing
certificate it issued), and the signing algorithm a private key implies.

C2PA (2.x, section 14.5) wants the signing certificate to be an end-entity certificate (not a CA)
with ``digitalSignature`` key usage and an extended key usage it lists (email protection and
document signing here), issued by a CA whose certificate is the trust anchor a verifier holds.
A self-signed signing certificate is refused by c2pa-rs, hence the two-level chain.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# id-kp-documentSigning (RFC 9336); cryptography names no constant for it.
DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")
ALGORITHMS = ("es256", "ps256")
CHAIN_FILE, KEY_FILE, ROOT_FILE = "chain.pem", "key.pem", "root.pem"


@dataclass(frozen=True)
class CertificateChain:
    """PEM bytes: the signing certificate (then any intermediates), its private key (PKCS#8,
    unencrypted) and the root that verifiers trust."""

    chain_pem: bytes
    key_pem: bytes
    root_pem: bytes

    def write(self, folder: Path) -> None:
        """``chain.pem``, ``key.pem`` (mode 0600) and ``root.pem`` in ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CHAIN_FILE).write_bytes(self.chain_pem)
        fd = os.open(folder / KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as key:
            key.write(self.key_pem)
        (folder / ROOT_FILE).write_bytes(self.root_pem)

    @classmethod
    def read(cls, folder: Path) -> CertificateChain:
        root = folder / ROOT_FILE
        return cls(
            chain_pem=(folder / CHAIN_FILE).read_bytes(),
            key_pem=(folder / KEY_FILE).read_bytes(),
            root_pem=root.read_bytes() if root.exists() else b"",
        )


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        ]
    )


def _new_key(algorithm: str) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    if algorithm == "es256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "ps256":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise ValueError(f"Unknown algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}.")


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def development_chain(
    *,
    organization: str = "Easel development",
    common_name: str = "Easel content credentials",
    algorithm: str = "es256",
    days: int = 825,
    now: dt.datetime | None = None,
) -> CertificateChain:
    """A new root CA (valid 10 years) and a signing certificate it issued (valid ``days``).
    Verifiers trust it only if they are given ``root_pem``: for development and tests."""
    now = now or dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(minutes=5)  # clocks of web and worker machines differ a little
    root_key, key = _new_key(algorithm), _new_key(algorithm)
    root_name = _name(f"{organization} root CA", organization)
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False)
        .sign(root_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organization))
        .issuer_name(root_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
        )
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return CertificateChain(
        chain_pem=leaf.public_bytes(pem),
        key_pem=key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        root_pem=root.public_bytes(pem),
    )


def signing_algorithm(key_pem: bytes) -> str:
    """The C2PA algorithm name for a PEM private key: ES256/384/512 by curve, PS256 for RSA,
    Ed25519. ``ValueError`` names what is wrong with any other key."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"The signing key is not an unencrypted PEM private key ({exc}); export it as "
            "PKCS#8 without a passphrase."
        ) from None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        by_curve = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
        if key.curve.name not in by_curve:
            raise ValueError(f"C2PA signs with P-256, P-384 or P-521 keys, not {key.curve.name}.")
        return by_curve[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    raise ValueError(f"C2PA cannot sign with a {type(key).__name__}; use an EC or RSA key.")


def certificate_summary(chain_pem: bytes) -> dict[str, str]:
    """Subject, issuer and expiry of the first (signing) certificate of a PEM chain."""
    cert = x509.load_pem_x509_certificates(chain_pem)[0]
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }
