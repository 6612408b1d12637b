"""Verifying an image someone holds: its content credentials (present, signature, hash binding,
trust), the XMP fields, and the watermark id if it carries one. The upload is validated first
by the caller (``generation.api.provenance``) with the platform's upload checks.

Runs in the web process: c2pa-rs reads in native code and fetches nothing; the watermark reader
loads OpenCV and PyWavelets, never torch.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image

from .credentials import trust_anchors
from .engine import watermark
from .engine.xmp import PNG_KEY, xmp_fields

if TYPE_CHECKING:
    from .engine.content_credentials import CredentialsReport

MIME_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "MPO": "image/jpeg", "WEBP": "image/webp"}
# Reading the mark walks every 8×8-pixel block in Python: ~60 ms at 512×512, ~1 s at 2048×2048.
WATERMARK_MAX_PIXELS = 2048 * 2048


@dataclass(frozen=True)
class WatermarkReading:
    checked: bool
    id: str | None = None
    reason: str = ""  # why it was not checked


@dataclass(frozen=True)
class Verification:
    mime_type: str
    credentials: CredentialsReport
    metadata: dict[str, str]
    watermark: WatermarkReading


def _watermark(image: Image.Image) -> WatermarkReading:
    pixels = image.width * image.height
    if not watermark.fits(image.width, image.height):
        return WatermarkReading(
            checked=False,
            reason=f"{image.width}×{image.height} is below the {watermark.MIN_PIXELS:,} pixels "
            "a watermark needs.",
        )
    if pixels > WATERMARK_MAX_PIXELS:
        return WatermarkReading(
            checked=False,
            reason=f"{image.width}×{image.height} is above the {WATERMARK_MAX_PIXELS:,} pixels "
            "read for a watermark (Easel's images are smaller; send the image as downloaded).",
        )
    return WatermarkReading(checked=True, id=watermark.detect(image.convert("RGB")))


def image_verify(*, data: bytes) -> Verification:
    """Everything ``data`` (a PNG, JPEG or WebP that passed the upload checks) says about where
    it came from."""
    with Image.open(io.BytesIO(data), formats=list(MIME_TYPES)) as image:
        image.load()
        mime_type = MIME_TYPES[str(image.format)]
        packet = image.info.get("xmp") or image.info.get(PNG_KEY)
        mark = _watermark(image)
    from .engine import content_credentials  # c2pa-rs is loaded on the first verification

    report = content_credentials.read(data, mime_type=mime_type, trust_anchors_pem=trust_anchors())
    return Verification(
        mime_type=mime_type, credentials=report, metadata=xmp_fields(packet), watermark=mark
    )
