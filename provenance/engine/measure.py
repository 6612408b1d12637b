"""Measurements behind the README's provenance figures (``manage.py watermark_report``): how often
the watermark is found again after what happens to images on the way to a shop (JPEG re-encoding,
resizing, cropping), how small an image may be, and what signing and marking cost per image.

The pictures are synthetic and seeded, so a run repeats exactly: ``photo`` has the 1/f spectrum of
natural photographs (and of diffusion renders); ``studio`` is a smooth gradient with soft shapes
and sensor noise; ``white`` is one soft product shape on a flat white background. A folder of real
images can be measured as well.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from . import watermark

FAMILIES = ("photo", "studio", "white")


def photo(rng: np.random.Generator, size: int) -> Image.Image:
    """Colour noise with a 1/f amplitude spectrum, like natural images."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    falloff = 1.0 / np.maximum(np.hypot(fx, fy), 1.0 / size)
    channels = []
    for _ in range(3):
        phase = np.exp(2j * np.pi * rng.random(falloff.shape))
        plane = np.fft.irfft2(falloff * phase, s=(size, size))
        channels.append((plane - plane.mean()) / (plane.std() + 1e-9))
    mix = rng.normal(0, 1, (3, 3)) * 0.35 + np.eye(3)  # correlated channels, as in photos
    pixels = np.tensordot(np.stack(channels, axis=-1), mix, axes=1) * 45 + rng.uniform(80, 170, 3)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def studio(rng: np.random.Generator, size: int) -> Image.Image:
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, size)[:, None, None]
    image = Image.fromarray(((top * (1 - t) + bottom * t) * np.ones((1, size, 1))).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = (int(v) for v in rng.integers(0, size * 3 // 4, 2))
        x1, y1 = (
            x0 + int(rng.integers(size // 8, size // 2)),
            y0 + int(rng.integers(size // 8, size // 2)),
        )
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=colour)
    soft = np.asarray(image.filter(ImageFilter.GaussianBlur(1.5)), dtype=float)
    noisy = soft + rng.normal(0, 4, soft.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def white(rng: np.random.Generator, size: int) -> Image.Image:
    image = Image.new("RGB", (size, size), (255, 255, 255))
    radius = int(rng.integers(size // 6, size // 3))
    centre = size // 2 + int(rng.integers(-size // 8, size // 8))
    colour = tuple(int(c) for c in rng.integers(0, 230, 3))
    ImageDraw.Draw(image).ellipse(
        [centre - radius, centre - radius, centre + radius, centre + radius], fill=colour
    )
    return image.filter(ImageFilter.GaussianBlur(2))


MAKERS: dict[str, Callable[[np.random.Generator, int], Image.Image]] = {
    "photo": photo,
    "studio": studio,
    "white": white,
}


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)  # Pillow's default 4:2:0 subsampling
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _resized(image: Image.Image, factor: float) -> Image.Image:
    return image.resize((round(image.width * factor), round(image.height * factor)), Image.LANCZOS)


CONDITIONS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "as stored (PNG)": lambda im: im,
    "JPEG q90": lambda im: _jpeg(im, 90),
    "JPEG q75": lambda im: _jpeg(im, 75),
    "JPEG q50": lambda im: _jpeg(im, 50),
    "resized to 75%, back to full size": lambda im: _resized(_resized(im, 0.75), 1 / 0.75),
    "resized to 75%": lambda im: _resized(im, 0.75),
    "resized to 50%": lambda im: _resized(im, 0.5),
    "cropped by 10 px": lambda im: im.crop((10, 10, im.width, im.height)),
}


@dataclass(frozen=True)
class Rate:
    family: str
    size: str
    condition: str
    found: int  # the right id
    wrong: int  # another id (should never happen)
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.found / self.total if self.total else 0.0


def _marks(rng: np.random.Generator) -> str:
    return bytes(rng.integers(0, 256, watermark.ID_BYTES, dtype=np.uint8)).hex()


def detection_rates(
    images: Iterable[Image.Image], *, family: str, conditions: Iterable[str], seed: int = 0
) -> list[Rate]:
    """Mark each image with a fresh id, put it through each condition, try to read it back."""
    rng = np.random.default_rng(seed)
    names = list(conditions)
    counts = {name: [0, 0, 0] for name in names}
    size = ""
    for image in images:
        size = size or f"{image.width}×{image.height}"
        if size != f"{image.width}×{image.height}":
            size = "mixed"
        mark = _marks(rng)
        marked = watermark.embed(image.convert("RGB"), mark)
        for name in names:
            got = watermark.detect(CONDITIONS[name](marked))
            counts[name][0] += got == mark
            counts[name][1] += got is not None and got != mark
            counts[name][2] += 1
    return [Rate(family, size, name, *counts[name]) for name in names]


def false_positives(images: Iterable[Image.Image]) -> tuple[int, int]:
    """(marks read, images read) on pictures that were never marked."""
    read = [watermark.detect(image.convert("RGB")) for image in images]
    return sum(r is not None for r in read), len(read)


def synthetic(family: str, *, count: int, size: int, seed: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [MAKERS[family](rng, size) for _ in range(count)]


def folder_images(folder: Path, *, limit: int) -> list[Image.Image]:
    suffixes = {".png", ".jpg", ".jpeg", ".webp"}
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes)
    images = []
    for path in paths:
        with Image.open(path) as image:
            if watermark.fits(*image.size):
                images.append(image.convert("RGB"))
        if len(images) >= limit:
            break
    return images


@dataclass(frozen=True)
class Cost:
    what: str
    median_ms: float
    p90_ms: float
    added_bytes: int | None = None


def timed(what: str, run: Callable[[], int | None], *, repeat: int) -> Cost:
    """Median and 90th percentile of ``run()`` (which may return the bytes it added)."""
    run()  # warm: imports, the first native call
    times, added = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        added = run()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return Cost(
        what,
        statistics.median(times),
        times[min(len(times) - 1, int(0.9 * len(times)))],
        added,
    )
