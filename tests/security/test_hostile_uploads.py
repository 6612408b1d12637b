"""Hostile training photos (``POST /api/v1/trainings``): decompression bombs crafted in a few dozen
bytes, truncated files, names that contradict the content, polyglots, formats outside PNG/JPEG/WebP,
too many files. Each is a 400 naming the file and the reason, answered from the header without
decoding a bomb, and nothing is stored or queued. (tests/training/test_api.py covers a text file, a
too-small photo, an encoded 81 Mpx bomb, a cut PNG, an oversize file and too few photos.)
"""

from __future__ import annotations

import io
import struct
import time
import zlib
from collections.abc import Iterator
from unittest import mock

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, ImageFile

from generation import storage
from models_registry.models import Category
from training.models import TrainingImage, TrainingJob

from .conftest import png

pytestmark = pytest.mark.django_db


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header declaring ``width``×``height`` RGB, with a few bytes of pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _chunk(b"IEND", b"")
    )


def jpeg_claiming(width: int, height: int) -> bytes:
    """A baseline JPEG frame header (SOF0) declaring ``width``×``height``, and no real scan."""
    frame = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"
    scan = b"\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00"
    return (
        b"\xff\xd8\xff\xc0"
        + struct.pack(">H", len(frame) + 2)
        + frame
        + b"\xff\xda"
        + struct.pack(">H", len(scan) + 2)
        + scan
        + b"\0" * 16
        + b"\xff\xd9"
    )


def encoded(fmt: str, size: tuple[int, int] = (48, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(out, format=fmt)
    return out.getvalue()


@pytest.fixture
def category(owner, tiny_base_model) -> Category:  # type: ignore[no-untyped-def]
    return Category.objects.create(
        organization=owner.org, slug="stars", name="Stars", base_model=tiny_base_model
    )


@pytest.fixture
def queued() -> Iterator[mock.MagicMock]:
    with mock.patch("training.services.enqueue_training") as enqueue:
        yield enqueue


def _submit(client, files):  # type: ignore[no-untyped-def]
    body = {
        "category": "stars",
        "rare_token": "sks",
        "class_prompt": "a star",
        "params": '{"max_steps": 20}',
        "images": [SimpleUploadedFile(name, data) for name, data in files],
    }
    started = time.monotonic()
    response = client.post("/api/v1/trainings", body, format="multipart")
    return response, time.monotonic() - started


def _stored_for(org_id: int) -> set[str]:
    """The training folders in storage for ``org_id`` (the bucket outlives test databases, whose
    ids repeat, so tests compare before and after)."""
    try:
        folders, files = default_storage.listdir(f"orgs/{org_id}/trainings")
    except FileNotFoundError:  # local storage: the folder was never made
        return set()
    return {*folders, *files}


def _problems(response) -> list[str]:  # type: ignore[no-untyped-def]
    found = response.json()["error"]["fields"]["images"]
    return [found] if isinstance(found, str) else found


def _assert_nothing_kept(owner, queued, stored_before: set[str]) -> None:  # type: ignore[no-untyped-def]
    assert not TrainingJob.objects.exists() and not TrainingImage.objects.exists()
    assert _stored_for(owner.org.pk) == stored_before
    assert not queued.called


def test_decompression_bombs_are_refused_from_their_header_without_being_decoded(
    owner, client_for, category, queued
):
    files = [
        ("ihdr-10-gigapixels.png", png_claiming(100_000, 100_000)),  # past Pillow's own limit
        ("ihdr-81-megapixels.png", png_claiming(9_000, 9_000)),  # past ours (40 Mpx)
        ("sof-4-gigapixels.jpg", jpeg_claiming(65_000, 65_000)),
    ]
    assert max(len(data) for _name, data in files) < 100
    stored = _stored_for(owner.org.pk)
    with mock.patch.object(
        ImageFile.ImageFile, "load", side_effect=AssertionError("a bomb was decoded")
    ) as decode:
        response, seconds = _submit(client_for(owner), files)
    assert response.status_code == 400, response.content
    problems = _problems(response)
    assert len(problems) == 3
    for (name, _data), problem in zip(files, problems, strict=True):
        assert problem.startswith(f"{name}: ") and problem.endswith("it was not decoded."), problem
    assert "9000×9000 is 81,000,000 pixels, above the limit of 40,000,000" in problems[1]
    assert "more pixels than can be decoded safely" in problems[0]
    assert not decode.called and seconds < 2
    _assert_nothing_kept(owner, queued, stored)


HOSTILE_PHOTOS = [
    ("cut.jpg", encoded("JPEG", (64, 64))[:200], "the JPEG image is truncated or corrupt"),
    ("cut-late.jpg", encoded("JPEG", (64, 64))[:-300], "the image is truncated or corrupt"),
    ("cut.webp", encoded("WEBP", (64, 64))[:60], "the WebP image is truncated or corrupt"),
    ("header-only.png", png_claiming(64, 64)[:33], "the PNG image is truncated or corrupt"),
    ("anim.gif", encoded("GIF"), "not a PNG, JPEG or WebP image."),
    ("old.bmp", encoded("BMP"), "not a PNG, JPEG or WebP image."),
    ("scan.tiff", encoded("TIFF"), "not a PNG, JPEG or WebP image."),
    ("icon.ico", encoded("ICO"), "not a PNG, JPEG or WebP image."),
    (
        "logo.svg",
        b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
        b"<script>alert(1)</script></svg>",
        "not a PNG, JPEG or WebP image.",
    ),
    ("gif-named.png", encoded("GIF"), "not a PNG, JPEG or WebP image."),
    ("png-then-html.png", b"\x89PNG\r\n\x1a\n<html><script>x()</script>", "PNG image is trunc"),
    ("photo.jpg", encoded("PNG"), "the name says .jpg but the content is PNG; rename it"),
    ("photo.webp", encoded("JPEG"), "the name says .webp but the content is JPEG"),
    ("page.html", encoded("PNG"), "a .html file, but photos must be .png, .jpg/.jpeg or"),
    ("vector.svg", encoded("PNG"), "a .svg file, but photos must be"),
    ("script.php", encoded("JPEG"), "a .php file"),
]


@pytest.mark.parametrize(
    ("name", "data", "reason"), HOSTILE_PHOTOS, ids=[name for name, *_ in HOSTILE_PHOTOS]
)
def test_each_hostile_photo_is_a_400_naming_it_and_why_and_nothing_is_kept(
    owner, client_for, category, queued, name, data, reason
):
    good = [(f"star-{i}.png", png((40, 40), (0, 100 + i, 200))) for i in range(3)]
    stored = _stored_for(owner.org.pk)
    response, seconds = _submit(client_for(owner), [*good, (name, data)])
    assert response.status_code == 400, response.content
    [problem] = _problems(response)
    assert problem.startswith(f"{name}: ") and reason in problem, problem
    assert seconds < 2
    _assert_nothing_kept(owner, queued, stored)


def test_names_matching_their_content_in_any_case_or_without_an_extension_are_accepted(
    owner, client_for, category, queued
):
    files = [
        ("IMG_0001.JPG", encoded("JPEG")),
        ("holiday.jpeg", encoded("JPEG")),
        ("shot.WebP", encoded("WEBP")),
        ("image-4", encoded("PNG")),
        ("IMG_2024.03.15", encoded("PNG")),
    ]
    response, _seconds = _submit(client_for(owner), files)
    assert response.status_code == 202, response.content
    assert [i["file_name"] for i in response.json()["images"]] == [n for n, _d in files]


def test_a_real_photo_carrying_a_zip_or_html_payload_is_stored_re_encoded_without_it(
    owner, client_for, category, queued
):
    """A complete image with something appended decodes as the image; what is stored is the
    normalized PNG made from its pixels, so the payload never reaches storage."""
    payload = b"PK\x03\x04" + b"<html><script>steal()</script></html>" * 20
    files = [(f"star-{i}.png", png((40, 40), (0, 100 + i, 200)) + payload) for i in range(3)]
    response, _seconds = _submit(client_for(owner), files)
    assert response.status_code == 202, response.content
    for image in TrainingJob.objects.get().images.all():
        kept = storage.read_object(image.storage_key)
        assert payload not in kept and b"<script>" not in kept
        with Image.open(io.BytesIO(kept)) as stored:
            assert stored.format == "PNG" and stored.size == (32, 32)


def test_more_than_thirty_photos_are_refused_before_any_is_read(
    owner, client_for, category, queued
):
    files = [(f"star-{i}.png", png((40, 40))) for i in range(31)]
    stored = _stored_for(owner.org.pk)
    with mock.patch.object(Image, "open", side_effect=AssertionError("a photo was opened")):
        response, _seconds = _submit(client_for(owner), files)
    assert response.status_code == 400
    assert "no more than 30" in str(_problems(response))
    _assert_nothing_kept(owner, queued, stored)
