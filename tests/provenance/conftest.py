"""Provenance fixtures: one signing chain per test session, configured as the platform's (so
verification knows its root), the worker's tiny pipeline, and helpers to read what was stored."""

from __future__ import annotations

import io
import zlib
from typing import Any

import numpy as np
import pytest
from PIL import Image

from provenance.engine.certificates import CertificateChain, development_chain
from tests.catalog.conftest import catalog, listing, produce, sent  # noqa: F401 (fixtures)
from tests.generation.conftest import enqueued, local_pipeline, tiny_pipe  # noqa: F401 (fixtures)


@pytest.fixture(scope="session")
def chain() -> CertificateChain:
    # One per session: the signer built from it is cached by its bytes, so tests sign fast.
    return development_chain(organization="Easel tests", common_name="Easel test signer")


@pytest.fixture(autouse=True)
def platform_certificate(settings, chain: CertificateChain, tmp_path) -> CertificateChain:  # type: ignore[no-untyped-def]
    settings.EASEL_PROVENANCE_SIGN = True
    settings.EASEL_PROVENANCE_CERT_CHAIN = chain.chain_pem.decode()
    settings.EASEL_PROVENANCE_PRIVATE_KEY = chain.key_pem.decode()
    settings.EASEL_PROVENANCE_TRUST_ANCHORS = chain.root_pem.decode()
    settings.EASEL_PROVENANCE_DEV_CERT_DIR = tmp_path / "dev-chain"
    settings.EASEL_PUBLIC_URL = "https://easel.example.com"
    return chain


def photo_like(size: int = 512, seed: int = 0) -> Image.Image:
    """A picture with a natural image's texture (see ``provenance.engine.measure``)."""
    from provenance.engine.measure import photo

    return photo(np.random.default_rng(seed), size)


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, offset of its data, length) of every chunk of a PNG."""
    chunks, at = [], 8
    while at < len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        chunks.append((data[at + 4 : at + 8], at + 8, length))
        at += 12 + length
    return chunks


def flipped(
    data: bytes, chunk_type: bytes, *, at: int = 100, fix_crc: bool = False, start: int = 0
) -> bytes:
    """``data`` with one byte changed inside its first ``chunk_type`` chunk (from ``start``);
    ``fix_crc``: and that chunk's CRC made right again, as a tool that edits the file would."""
    _, offset, length = next(c for c in png_chunks(data) if c[0] == chunk_type and c[1] >= start)
    changed = bytearray(data)
    changed[offset + min(at, length - 1)] ^= 0x01
    if fix_crc:
        crc = zlib.crc32(bytes(changed[offset - 4 : offset + length]))
        changed[offset + length : offset + length + 4] = crc.to_bytes(4, "big")
    return bytes(changed)


def actions_of(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    from provenance.engine.manifest import assertion

    return (assertion(manifest, "c2pa.actions") or {}).get("actions", [])
