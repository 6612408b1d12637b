"""Uploads to vary: a source image for img2img/inpaint, or an inpainting mask.

Each file gets the checks every upload gets (`training.uploads.image_file_check`: size in bytes,
PNG/JPEG/WebP by content and a name that agrees, pixel count read from the header before
decoding, complete decode), then a size check of its own (each side at least the smallest size
Easel draws, ``protocol.MIN_SIDE``); a mask must also mark something to repaint. It is made
upright (EXIF orientation), RGB over white (a mask: greyscale over black, so its transparent
parts are kept), stored as PNG under
``orgs/<org>/uploads/<id>.png`` with the hash of the file as sent, and recorded as an `Upload`.
"""

from __future__ import annotations

import io
import uuid

import numpy as np
from django.core.exceptions import ValidationError
from PIL import Image, ImageOps

from tenants.principal import Principal
from tenants.roles import Action
from tenants.services import require

from . import storage
from .models import Upload, UploadKind
from .protocol import MIN_SIDE


def upload_key(*, org_id: int, upload_id: object) -> str:
    return f"orgs/{org_id}/uploads/{upload_id}.png"


def _normalized(data: bytes, kind: str) -> Image.Image:
    """Upright, and RGB over white — or, for a mask, greyscale over black: a transparent part
    of a mask is one that is kept."""
    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened)
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            under = (0, 0, 0) if kind == UploadKind.MASK else (255, 255, 255)
            flat = Image.new("RGB", image.size, under)
            flat.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
            image = flat
        return image.convert("L" if kind == UploadKind.MASK else "RGB")


def upload_create(*, actor: Principal, file_name: str, data: bytes, kind: str) -> Upload:
    """Validate, normalize and store one upload; ``ValidationError({"file": reason})`` naming
    the file when it is refused (nothing is stored then)."""
    from training.uploads import image_file_check  # the one upload check of the platform

    require(actor, Action.GENERATE)
    if kind not in UploadKind.values:
        raise ValidationError({"kind": f"Unknown kind '{kind}'; use one of {UploadKind.values}."})
    name = file_name or "upload"
    problem = image_file_check(name, data)
    if problem:
        raise ValidationError({"file": problem})
    image = _normalized(data, kind)
    width, height = image.size
    if min(width, height) < MIN_SIDE:
        raise ValidationError(
            {"file": f"{name}: {width}×{height} is smaller than {MIN_SIDE} px on a side."}
        )
    if kind == UploadKind.MASK and not (np.asarray(image) > 127).any():
        raise ValidationError(
            {"file": f"{name}: the mask has no white (repaint) pixels, so nothing would change."}
        )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    upload_id = uuid.uuid4()
    key = upload_key(org_id=actor.org.pk, upload_id=upload_id)
    storage.write_object(key, buffer.getvalue())
    return Upload.objects.create(
        id=upload_id,
        organization=actor.org,
        kind=kind,
        file_name=name[:255],
        storage_key=key,
        sha256=storage.sha256_hex(data),
        size_bytes=len(data),
        width=width,
        height=height,
        created_by=actor.person,
        created_by_api_key=actor.api_key,
    )
