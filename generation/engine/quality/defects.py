"""Defects derived from a good product shot, for measuring the quality gate: a flat fill, an
empty backdrop, noise, blur, exposure, a rotated hue, a subject moved off the edge, a busy
backdrop, a near copy, a wrong size. Used by the checks' tests, by scripts/measure_image_checks.py
(the thresholds), scripts/make_quality_set.py (the labelled evaluation set) and
``manage.py gate_pass_rate`` (the controls the gate must fail). numpy and Pillow only.

They leave the outermost line of pixels as it was: a decoder draws it off-tone (see
`checks.foreground_mask`).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter


def flat_fill(image: np.ndarray) -> np.ndarray:
    """The image's median colour everywhere: a solid fill."""
    colour = np.median(image.reshape(-1, 3), axis=0).astype(np.uint8)
    return np.broadcast_to(colour, image.shape).copy()


def empty_backdrop(image: np.ndarray) -> np.ndarray:
    """The backdrop without its subject: every pixel more than 16 of 255 from the backdrop (the
    median colour just inside the edge), and its neighbours, repainted with the median of its
    row's remaining backdrop pixels, so the studio fall-off and the backdrop's own mottling stay.
    The outermost line is kept as it was: a decoder draws it off-tone whatever it shows."""
    pixels = image.astype(np.int64)
    inner = pixels[1:-1, 1:-1]
    frame = np.concatenate([inner[0], inner[-1], inner[:, 0], inner[:, -1]])
    backdrop = np.median(frame, axis=0)
    subject = np.abs(pixels - backdrop).max(axis=-1) > 16
    grown = subject.copy()  # and its neighbours: the fringe of a soft subject
    grown[1:] |= subject[:-1]
    grown[:-1] |= subject[1:]
    grown[:, 1:] |= subject[:, :-1]
    grown[:, :-1] |= subject[:, 1:]
    empty = pixels.copy()
    for row in range(1, len(pixels) - 1):
        kept = pixels[row, 1:-1][~grown[row, 1:-1]]
        tone = np.median(kept, axis=0) if len(kept) else backdrop
        empty[row, 1:-1][grown[row, 1:-1]] = np.rint(tone)
    return empty.astype(np.uint8)


def random_noise(image: np.ndarray, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, image.shape, dtype=np.uint8)


def blurred(image: np.ndarray, *, box: bool = False, passes: int = 1) -> np.ndarray:
    """Visibly soft: a Gaussian blur of 1/16 of the side (σ 2 px at 32 px), or a box of 1/12
    (a single box pass keeps steps at the ends of thin parts, so it needs the wider radius),
    applied `passes` times."""
    width = image.shape[1]
    blur_filter = ImageFilter.BoxBlur(width / 12) if box else ImageFilter.GaussianBlur(width / 16)
    soft = Image.fromarray(image)
    for _ in range(passes):
        soft = soft.filter(blur_filter)
    return np.asarray(soft)


def exposed(image: np.ndarray, gain: float) -> np.ndarray:
    """Pixel values scaled by `gain` (3 over, 1/4 under) and clipped, as by a sensor."""
    return np.clip(image.astype(np.float64) * gain, 0, 255).astype(np.uint8)


def hue_rotated(image: np.ndarray, degrees: float) -> np.ndarray:
    hsv = np.asarray(Image.fromarray(image).convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int64) + round(degrees / 360 * 256)) % 256
    return np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"))


def subject_box(image: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the pixels inside the outermost line that differ from the
    backdrop of their row (its pixel just inside the left edge)."""
    inner = image[1:-1, 1:-1].astype(np.int64)
    mask = np.abs(inner - inner[:, :1]).max(axis=-1) > 40
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]) + 1, int(rows[-1]) + 1, int(cols[0]) + 1, int(cols[-1]) + 1


def shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Moved by (dy, dx) px; what is uncovered repeats the backdrop at the edge."""
    height, width = image.shape[:2]
    pad = ((abs(dy), abs(dy)), (abs(dx), abs(dx)), (0, 0))
    padded = np.pad(image, pad, mode="edge")
    top, left = abs(dy) - dy, abs(dx) - dx
    return padded[top : top + height, left : left + width]


def cropped(image: np.ndarray, side: str) -> np.ndarray:
    """The subject moved so that its centre lies on the `side` edge: half of it is cut off.
    The picture moves inside the outermost line of pixels, which stays as the decoder drew it
    (off-tone on a render; see `checks.foreground_mask`)."""
    top, bottom, left, right = subject_box(image)
    centre_y, centre_x = (top + bottom) // 2, (left + right) // 2
    height, width = image.shape[:2]
    dy, dx = {
        "top": (1 - centre_y, 0),
        "bottom": (height - 2 - centre_y, 0),
        "left": (0, 1 - centre_x),
        "right": (0, width - 2 - centre_x),
    }[side]
    moved = image.copy()
    moved[1:-1, 1:-1] = shifted(image[1:-1, 1:-1], dy, dx)
    return moved


def busy_backdrop(image: np.ndarray, seed: int) -> np.ndarray:
    """The backdrop (pixels within 40 of the median colour just inside the edge) replaced by a
    patchwork of random colours in blocks of 1/8 of the side: a cluttered scene behind the
    subject."""
    height, width = image.shape[:2]
    inner = image[1:-1, 1:-1].astype(np.int64)
    frame = np.concatenate([inner[0], inner[-1], inner[:, 0], inner[:, -1]])
    backdrop = np.abs(image.astype(np.int64) - np.median(frame, axis=0)).max(axis=-1) <= 40
    block = max(1, width // 8)
    cells = np.random.default_rng(seed).integers(
        0, 256, (-(-height // block), -(-width // block), 3)
    )
    patchwork = np.repeat(np.repeat(cells, block, axis=0), block, axis=1)[:height, :width]
    return np.where(backdrop[..., None], patchwork, image).astype(np.uint8)


def near_copy(image: np.ndarray, seed: int) -> np.ndarray:
    """The same image with slight noise (σ 3 of 255), as after a re-encode."""
    jitter = np.random.default_rng(seed).normal(0, 3, image.shape)
    return np.clip(image + jitter, 0, 255).astype(np.uint8)


def resized(image: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS))
