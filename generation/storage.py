"""Where generated images live: deterministic keys, PNG text metadata, thumbnails, download URLs.

Keys are ``orgs/<org_id>/generations/<job_id>/<index>-<attempt>.png`` (thumbnail:
``…-thumb.webp``): a task delivered twice writes the same keys again, so it overwrites instead of
adding a copy. Download URLs are short-lived (``EASEL_DOWNLOAD_URL_TTL`` seconds): presigned GETs
on S3, and on the local filesystem a signed link to ``/api/v1/images/file/<token>``, whose token
names one key and expires like a presigned URL. Both are handed out only through the
organization-scoped image endpoints, so a link never reaches another organization.

No torch here; Pillow only.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any

from django.conf import settings
from django.core import signing
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone
from PIL import Image, PngImagePlugin

THUMBNAIL_MAX_SIDE = 256
_SIGNING_SALT = "easel.generation.image-download"


def image_key(*, org_id: int, job_id: object, index: int, attempt: int) -> str:
    return f"orgs/{org_id}/generations/{job_id}/{index}-{attempt}.png"


def thumbnail_key(*, org_id: int, job_id: object, index: int, attempt: int) -> str:
    return f"orgs/{org_id}/generations/{job_id}/{index}-{attempt}-thumb.webp"


def job_prefix(*, org_id: int, job_id: object) -> str:
    return f"orgs/{org_id}/generations/{job_id}/"


def encode_png(image: Image.Image, metadata: dict[str, Any]) -> bytes:
    """PNG bytes with one ``tEXt``/``iTXt`` chunk per metadata item (non-strings as JSON)."""
    info = PngImagePlugin.PngInfo()
    for name, value in metadata.items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        info.add_itxt(name, text)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def read_png_metadata(data: bytes) -> dict[str, str]:
    """The text chunks of a PNG (what ``encode_png`` wrote)."""
    with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
        image.load()
        return dict(image.text)


def encode_thumbnail(image: Image.Image, *, max_side: int = THUMBNAIL_MAX_SIDE) -> bytes:
    thumb = image.convert("RGB")
    thumb.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    thumb.save(buffer, format="WEBP", quality=80)
    return buffer.getvalue()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class StorageUnavailable(RuntimeError):
    """Object storage refused or could not be reached (the cause is chained)."""


def write_object(key: str, data: bytes | IO[bytes]) -> None:
    """Write ``data`` (bytes, or a binary file read in chunks) under exactly ``key``, replacing
    what is there (never a renamed copy). ``StorageUnavailable`` when storage fails."""
    content = ContentFile(data) if isinstance(data, bytes) else File(data)
    try:
        if default_storage.exists(key):
            # FileSystemStorage would save under a new name; S3 overwrites anyway (one HEAD).
            default_storage.delete(key)
        saved = default_storage.save(key, content)
    except Exception as exc:
        raise StorageUnavailable(f"{type(exc).__name__}: {exc}") from exc
    if saved != key:
        raise RuntimeError(
            f"Storage wrote {saved!r} instead of {key!r}; check AWS_S3_FILE_OVERWRITE."
        )


def delete_object(key: str) -> None:
    if key and default_storage.exists(key):
        default_storage.delete(key)


def objects_intended(*, job_id: object, keys: list[str]) -> None:
    """Record ``keys`` as about to be written for ``job_id`` (committed at once, before any write,
    so a crash after the write still leaves a trace)."""
    from .models import PendingObject

    PendingObject.objects.bulk_create(
        [PendingObject(key=key, job_id=job_id) for key in keys], ignore_conflicts=True
    )


def objects_kept(keys: list[str]) -> None:
    """``keys`` are referred to by an image row now (or were deleted): no longer pending."""
    from .models import PendingObject

    PendingObject.objects.filter(key__in=keys).delete()


def storage_leftovers_collect(*, older_than: timedelta | None = None) -> dict[str, int]:
    """Delete the objects whose writing attempt never recorded them (older than the lease, so
    their writer is gone), and their rows; an object an image row refers to is kept. A delete
    storage refuses now is tried again next time."""
    from django.db.models import Q

    from .models import GeneratedImage, PendingObject

    age = timedelta(seconds=settings.EASEL_JOB_LEASE_SECONDS + 60)
    if older_than is not None:
        age = older_than
    counts = {"deleted": 0, "kept": 0, "failed": 0}
    rows = PendingObject.objects.filter(created_at__lt=timezone.now() - age).order_by("id")
    for row in rows[:1000]:
        if GeneratedImage.objects.filter(
            Q(storage_key=row.key) | Q(thumbnail_key=row.key)
        ).exists():
            counts["kept"] += 1
        else:
            try:
                delete_object(row.key)
            except Exception:  # storage still down: next time
                counts["failed"] += 1
                continue
            counts["deleted"] += 1
        row.delete()
    return counts


def read_object(key: str) -> bytes:
    with default_storage.open(key, "rb") as fh:
        return fh.read()


@dataclass(frozen=True)
class DownloadUrl:
    url: str
    expires_at: datetime


def _is_s3() -> bool:
    return settings.EASEL_STORAGE == "s3"


def download_url(key: str) -> DownloadUrl:
    """A URL that fetches ``key`` for the next ``EASEL_DOWNLOAD_URL_TTL`` seconds."""
    ttl = int(settings.AWS_QUERYSTRING_EXPIRE)
    expires_at = timezone.now() + timedelta(seconds=ttl)
    if _is_s3():
        return DownloadUrl(url=default_storage.url(key, expire=ttl), expires_at=expires_at)
    token = signing.TimestampSigner(salt=_SIGNING_SALT).sign_object({"k": key})
    return DownloadUrl(url=reverse("v1:image-file", args=[token]), expires_at=expires_at)


class DownloadTokenInvalid(Exception):
    """The local download link is forged or expired."""


def key_for_download_token(token: str) -> str:
    """The storage key a local download token names; ``DownloadTokenInvalid`` when bad/expired."""
    ttl = int(settings.AWS_QUERYSTRING_EXPIRE)
    try:
        payload = signing.TimestampSigner(salt=_SIGNING_SALT).unsign_object(token, max_age=ttl)
    except signing.SignatureExpired:
        raise DownloadTokenInvalid("This download link has expired; ask for a new one.") from None
    except signing.BadSignature:
        raise DownloadTokenInvalid("This download link is not valid.") from None
    return str(payload["k"])
