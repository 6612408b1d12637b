"""Instance photos of a fine-tuning job: validated before anything is queued, then normalized.

Each file is checked in this order, and every bad file is reported with its name and reason in one
error (``ValidationError({"images": [...]})``), so nothing is queued until all of them are good:

1. its size in bytes (``EASEL_TRAINING_MAX_IMAGE_BYTES``);
2. its format, from the header: PNG, JPEG or WebP, and a name that does not say otherwise (a
   ``.jpg`` that is a PNG, or a ``.html`` that is an image, is refused: whatever made it lied);
3. its pixel count, from the header **before decoding** (``EASEL_TRAINING_MAX_IMAGE_PIXELS``), so a
   decompression bomb is refused without being expanded;
4. its shorter side, at least the training resolution (an upscaled photo teaches blur);
5. that it decodes completely (a truncated file is refused).

Then each is made upright (EXIF orientation), RGB (alpha flattened on white), centre-cropped to a
square and resized to the resolution, and encoded as PNG. The count must be 3–30.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO

from django.conf import settings
from django.core.exceptions import ValidationError
from PIL import Image, UnidentifiedImageError

from .engine.images import fit_square, to_rgb

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP")
# The extensions each format may carry; a name without an extension is fine (the API names such
# uploads ``image-<n>``). MPO is Pillow's name for a JPEG with extra pictures (phone cameras).
EXTENSIONS = {
    "PNG": (".png",),
    "JPEG": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "MPO": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "WEBP": (".webp",),
}
MIN_IMAGES = 3
MAX_IMAGES = 30


@dataclass(frozen=True)
class InstanceImage:
    file_name: str
    png: bytes  # normalized
    sha256: str  # of the file as uploaded
    width: int  # as uploaded
    height: int
    size_bytes: int


def _normalized(image: Image.Image, resolution: int) -> bytes:
    """As the trainer will see it (upright, RGB over white, centre square), encoded as PNG."""
    out = io.BytesIO()
    fit_square(to_rgb(image), resolution).save(out, format="PNG")
    return out.getvalue()


def _signature_format(data: bytes) -> str | None:
    """The allowed format whose signature ``data`` starts with, if any."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return None


def _name_mismatch(name: str, image_format: str) -> str | None:
    """Why ``name`` contradicts the content's format, or None."""
    suffix = PurePosixPath(name.replace("\\", "/")).suffix.lower()
    allowed = EXTENSIONS.get(image_format, ())
    # "IMG_2024.03.15" has no extension, only dots.
    if suffix in allowed or not any(c.isalpha() for c in suffix):
        return None
    content = "JPEG" if image_format == "MPO" else image_format
    if any(suffix in extensions for extensions in EXTENSIONS.values()):
        return (
            f"{name}: the name says {suffix} but the content is {content}; rename it to "
            f"{allowed[0]} or export it again in the format its name says."
        )
    return (
        f"{name}: a {suffix} file, but photos must be .png, .jpg/.jpeg or .webp (its content "
        f"is {content}); rename it to {allowed[0]}."
    )


def read_upload(upload: IO[bytes]) -> bytes:
    """An uploaded photo's bytes, never more than one past the size limit (so 30 huge files are
    refused without being read whole)."""
    return upload.read(int(settings.EASEL_TRAINING_MAX_IMAGE_BYTES) + 1)


def _check_one(name: str, data: bytes, *, resolution: int) -> InstanceImage | str:
    """The normalized image, or the reason ``name`` is refused."""
    max_bytes = int(settings.EASEL_TRAINING_MAX_IMAGE_BYTES)
    if not data:
        return f"{name}: the file is empty."
    if len(data) > max_bytes:
        return f"{name}: larger than the limit of {max_bytes:,} bytes."
    max_pixels = int(settings.EASEL_TRAINING_MAX_IMAGE_PIXELS)
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (UnidentifiedImageError, OSError):
        claimed = _signature_format(data)
        if claimed:  # Pillow cannot read past the start: cut short, or only dressed as one
            return (
                f"{name}: the {claimed} image is truncated or corrupt (its header is unreadable)."
            )
        return f"{name}: not a PNG, JPEG or WebP image."
    except Image.DecompressionBombError:  # Pillow's own header check, at twice its pixel limit
        return (
            f"{name}: its header declares more pixels than can be decoded safely (the limit is "
            f"{max_pixels:,}); it was not decoded."
        )
    with image:
        mismatch = _name_mismatch(name, str(image.format))
        if mismatch:
            return mismatch
        width, height = image.size  # from the header: nothing is decoded yet
        if width * height > max_pixels:
            return (
                f"{name}: {width}×{height} is {width * height:,} pixels, above the limit of "
                f"{max_pixels:,}; it was not decoded."
            )
        if min(width, height) < resolution:
            return (
                f"{name}: {width}×{height} is smaller than the training resolution "
                f"({resolution} px on the shorter side)."
            )
        try:
            image.load()
            png = _normalized(image, resolution)
        except (OSError, ValueError, SyntaxError) as exc:
            return f"{name}: the image is truncated or corrupt ({exc})."
    return InstanceImage(
        file_name=name,
        png=png,
        sha256=hashlib.sha256(data).hexdigest(),
        width=width,
        height=height,
        size_bytes=len(data),
    )


def image_file_check(name: str, data: bytes) -> str | None:
    """Why an uploaded image is refused, or None: checks 1–3 and 5 above (not the training
    resolution), for uploads other than training photos (``POST /provenance/verify``)."""
    checked = _check_one(name, data, resolution=1)
    return checked if isinstance(checked, str) else None


def instance_images_validate(
    files: Sequence[tuple[str, bytes]], *, resolution: int
) -> list[InstanceImage]:
    """Every file checked and normalized, or ``ValidationError({"images": [one line per bad
    file]})`` naming each with its reason."""
    if not MIN_IMAGES <= len(files) <= MAX_IMAGES:
        raise ValidationError(
            {"images": f"Send {MIN_IMAGES} to {MAX_IMAGES} photos, not {len(files)}."}
        )
    checked = [_check_one(name, data, resolution=resolution) for name, data in files]
    problems = [c for c in checked if isinstance(c, str)]
    if problems:
        raise ValidationError({"images": problems})
    return [c for c in checked if isinstance(c, InstanceImage)]
