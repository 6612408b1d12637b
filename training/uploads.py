"""Instance photos of a fine-tuning job: validated before anything is queued, then normalized.

Each file is checked in this order, and every bad file is reported with its name and reason in one
error (``ValidationError({"images": [...]})``), so nothing is queued until all of them are good:

1. its size in bytes (``EASEL_TRAINING_MAX_IMAGE_BYTES``);
2. its format, from the header: PNG, JPEG or WebP;
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

from django.conf import settings
from django.core.exceptions import ValidationError
from PIL import Image, UnidentifiedImageError

from .engine.images import fit_square, to_rgb

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP")
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


def _check_one(name: str, data: bytes, *, resolution: int) -> InstanceImage | str:
    """The normalized image, or the reason ``name`` is refused."""
    max_bytes = int(settings.EASEL_TRAINING_MAX_IMAGE_BYTES)
    if not data:
        return f"{name}: the file is empty."
    if len(data) > max_bytes:
        return f"{name}: {len(data):,} bytes, above the limit of {max_bytes:,}."
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (UnidentifiedImageError, OSError):
        return f"{name}: not a PNG, JPEG or WebP image."
    except Image.DecompressionBombError:
        return f"{name}: too many pixels to decode safely."
    with image:
        width, height = image.size  # from the header: nothing is decoded yet
        max_pixels = int(settings.EASEL_TRAINING_MAX_IMAGE_PIXELS)
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
