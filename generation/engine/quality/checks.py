"""Built-in image checks for the quality gate: defects a customer sees at a glance, found with
numpy and Pillow alone (no model, no torch, no Django).

Each check takes one RGB image as a numpy array of shape (H, W, 3): uint8, or float in [0, 1] as
a diffusers pipeline returns with ``output_type="np"``. In a float image NaNs count as black,
which is how they decode, and `black_or_nan` reports them. Each check returns a `CheckResult`:
whether the image passed, how sure the check is, a reason a marketer can read, and the measured
value its threshold applies to. `run_image_checks` runs every check over the outputs of one job.

The defaults in `CheckThresholds` come from scripts/measure_image_checks.py: synthetic product
shots (``models_registry.engine.shapes_data``) at 32 and 64 px, with each defect derived from
them. The numbers quoted next to each default are from that script.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .colour import colour_name, name_colour

# Rec. 601 luma weights: the brightness a viewer perceives, from sRGB values.
_LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict on one image.

    ``confidence`` is how sure the check is of ``passed``: 0.5 at the threshold, rising to 1.0
    as the value moves a threshold's width away from it. It is 0.0 when the check could not judge
    (a flat image has no edges to judge blur by); ``passed`` is then True, so a gate never blocks
    an image on a check that saw nothing.
    """

    check: str
    passed: bool
    confidence: float
    reason: str
    value: float | None


@dataclass(frozen=True)
class CheckThresholds:
    """Where each check draws its line, between good shots and their defects at 32 and 64 px
    (seeds 0-15 of every prompt; the figures below are the closest of each)."""

    # blank_or_flat: grey-level standard deviation (0-255). Good shots ≥ 10.1 (a small dark
    # subject on the dark backdrop); an empty backdrop with its studio fall-off ≤ 7.1.
    flat_std: float = 8.5
    # black_or_nan: a pixel is black when no channel exceeds `black_level`; the image is black
    # when more than `black_share` of it is. Good shots have none (the darkest shadow is at 13).
    black_level: int = 4
    black_share: float = 0.95
    # exposure, under: the brightness (luma, 0-255) of the brightest 1% of pixels. The mean
    # would not do: a good shot on a dark backdrop averages 34, darker than an under-exposed
    # white one (~61); what under-exposure takes away is every bright tone. Good shots ≥ 72.7
    # (a small dark subject on the dark backdrop); values cut to a quarter ≤ 62.8.
    underexposed_highlights: float = 67.0
    # exposure, over: the share of the subject (of the whole image when there is no plain
    # backdrop) that is blown out: two channels at or above `clipped_level`, or one with the
    # colour washed toward white (HSL lightness ≥ 0.65; a pure colour at full brightness has
    # 0.5). A vivid orange clipping only its red channel is not blown out: counting it, good
    # shots reach 0.63 clipped and overlap 3× exposure. As defined, good shots ≤ 0.20; at 3×
    # exposure ≥ 0.48 (at 2.5× ≥ 0.37).
    clipped_level: int = 250
    overexposed_share: float = 0.3
    # blur and noise: "sharpness" (see `sharpness`) on the image shrunk to at most
    # `sharpness_side` px. Good shots ≥ 1.03 at 32-64 px and ≥ 1.10 at 256-1024 px; Gaussian
    # blur of 1/32 of the side or more ≤ 0.33, a box blur of 1/12 ≤ 0.61; uniform noise ≈ 20
    # (the value for independent pixels), good shots ≤ 7.7.
    sharpness_side: int = 256
    blurred_sharpness: float = 0.8
    noisy_sharpness: float = 12.0
    # near_duplicate: a pair is a candidate when its 64-bit DCT hashes differ in at most
    # `duplicate_distance` bits (copies with slight noise: ≤ 8 bits), and a duplicate when at
    # most `duplicate_changed_share` of their 32 px colour thumbnails differs visibly: a channel
    # off by more than 24 of 255 once the mean colours are aligned (copies: none; shots of one
    # prompt from different seeds: ≥ 3 of 1024 pixels). The hash alone can't decide: on a plain
    # backdrop it mostly describes the backdrop, and 2% of such pairs, with a visibly bigger or
    # smaller subject, are within 4 bits. The thumbnails also keep a recoloured copy distinct.
    duplicate_distance: int = 10
    duplicate_changed_share: float = 0.002
    # subject_cropped and colour_expectation: a pixel is foreground when a channel differs from
    # the backdrop (the frame's median colour) by more than `foreground_delta`; there is a plain
    # backdrop only when at least `backdrop_share` of the frame is within that of the median.
    foreground_delta: int = 48
    backdrop_share: float = 0.5
    # subject_cropped: foreground along more than this share of one side means the subject runs
    # off the image. Good shots touch ≤ 0.03 (one pixel at 32 px, a big box near the edge); a
    # subject moved half out of the frame ≥ 0.125.
    cropped_side_share: float = 0.08
    # Foreground along this much of a side is a surface (a table, a floor), not a subject.
    surface_side_share: float = 0.9
    # colour_expectation: pixels count as coloured with at least this HSV saturation and value;
    # the subject is colourless (white, grey, black) when fewer than `coloured_share` of its
    # pixels are coloured. Otherwise its colour is its most common hue family. Good shots: ≥ 94%
    # of coloured pixels in their own family; rotated by 90° or more: ≤ 5%.
    coloured_saturation: float = 0.3
    coloured_value: float = 0.15
    coloured_share: float = 0.25


DEFAULT_THRESHOLDS = CheckThresholds()


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """``image`` as (H, W, 3) uint8; floats in [0, 1] are scaled, and NaNs become black."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"Expected an RGB image of shape (H, W, 3), got {array.shape}.")
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"Expected uint8 or float pixels, got {array.dtype}.")
    clean = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0)
    return np.rint(np.clip(clean, 0.0, 1.0) * 255.0).astype(np.uint8)


def _luma(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ _LUMA


def _confidence(value: float, threshold: float, width: float) -> float:
    """0.5 at the threshold, 1.0 at `width` or more away from it."""
    return round(0.5 + 0.5 * min(1.0, abs(value - threshold) / width), 3)


def blank_or_flat(
    image: np.ndarray, thresholds: CheckThresholds = DEFAULT_THRESHOLDS
) -> CheckResult:
    """Fail a flat fill or an empty backdrop: almost no variation in brightness."""
    std = float(_luma(as_rgb_uint8(image)).std())
    passed = std >= thresholds.flat_std
    if passed:
        reason = f"The image has visible content (brightness std {std:.1f} of 255)."
    else:
        reason = f"The image is almost uniformly one colour (std {std:.1f} of 255)."
    confidence = _confidence(std, thresholds.flat_std, thresholds.flat_std)
    return CheckResult("blank_or_flat", passed, confidence, reason, std)


def black_or_nan(
    image: np.ndarray, thresholds: CheckThresholds = DEFAULT_THRESHOLDS
) -> CheckResult:
    """Fail a black image, the usual look of a NaN (fp16 overflow) output once decoded.

    A float image with any NaN fails outright: its numbers overflowed, whatever it shows.
    """
    array = np.asarray(image)
    if np.issubdtype(array.dtype, np.floating):
        nan_share = float(np.isnan(array).any(axis=-1).mean()) if array.ndim == 3 else 0.0
        if nan_share > 0:
            reason = (
                f"The output contains NaN values ({nan_share:.0%} of pixels): the pipeline's "
                "numbers overflowed and the image decodes as black."
            )
            return CheckResult("black_or_nan", False, 1.0, reason, nan_share)
    pixels = as_rgb_uint8(array)
    black_share = float((pixels.max(axis=-1) <= thresholds.black_level).mean())
    passed = black_share <= thresholds.black_share
    if passed:
        reason = f"The image is not black ({black_share:.0%} black pixels)."
    else:
        reason = (
            f"The image is black ({black_share:.0%} of pixels), the usual result of a "
            "numerical overflow (NaN) in the pipeline."
        )
    confidence = _confidence(black_share, thresholds.black_share, thresholds.black_share / 2)
    return CheckResult("black_or_nan", passed, confidence, reason, black_share)


def _frame(image: np.ndarray) -> np.ndarray:
    """The one-pixel frame of the image, as (N, 3) pixels."""
    return np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])


def foreground_mask(
    image: np.ndarray, thresholds: CheckThresholds = DEFAULT_THRESHOLDS
) -> np.ndarray | None:
    """Pixels that differ strongly from the backdrop (the frame's median colour), or None when
    the frame is not a plain backdrop (a busy scene), where subject and background can't be told
    apart this way."""
    pixels = as_rgb_uint8(image).astype(np.int16)
    backdrop = np.median(_frame(pixels), axis=0)
    frame_delta = np.abs(_frame(pixels) - backdrop).max(axis=-1)
    if (frame_delta <= thresholds.foreground_delta).mean() < thresholds.backdrop_share:
        return None
    return np.abs(pixels - backdrop).max(axis=-1) > thresholds.foreground_delta


_WASHED_OUT = 0.65  # HSL lightness of a clipped pixel that reads as washed toward white


def exposure(image: np.ndarray, thresholds: CheckThresholds = DEFAULT_THRESHOLDS) -> CheckResult:
    """Fail an under-exposed image (not even its brightest parts are bright) or an over-exposed
    one (most of the subject clipped at full brightness). Clipping is judged on the subject so
    that a product on a pure white backdrop, clipped by design, is not flagged.

    ``value`` is the brightness of the brightest 1% (0-255) when under-exposed, otherwise the
    share of the subject that is blown out.
    """
    pixels = as_rgb_uint8(image)
    highlights = float(np.percentile(_luma(pixels), 99))
    dim = thresholds.underexposed_highlights
    if highlights < dim:
        reason = (
            f"Under-exposed: even the brightest parts reach only {highlights:.0f} of 255 "
            f"(threshold {dim:.0f})."
        )
        return CheckResult("exposure", False, _confidence(highlights, dim, dim), reason, highlights)
    mask = foreground_mask(pixels, thresholds)
    subject = pixels[mask] if mask is not None and mask.any() else pixels.reshape(-1, 3)
    clipped = subject >= thresholds.clipped_level
    lightness = (subject.max(axis=-1).astype(np.float64) + subject.min(axis=-1)) / 510
    blown = (clipped.sum(axis=-1) >= 2) | (clipped.any(axis=-1) & (lightness >= _WASHED_OUT))
    share = float(blown.mean())
    limit = thresholds.overexposed_share
    confidence = _confidence(share, limit, min(limit, 1.0 - limit))
    if share > limit:
        reason = (
            f"Over-exposed: {share:.0%} of the subject is blown out to white "
            f"(threshold {limit:.0%})."
        )
        return CheckResult("exposure", False, confidence, reason, share)
    reason = (
        f"Exposure looks right (brightest parts at {highlights:.0f} of 255, "
        f"{share:.0%} of the subject blown out)."
    )
    return CheckResult("exposure", True, confidence, reason, share)


_UNIFORM_STD = 2.0
# Mean squared gradient (grey levels²) that rounding to 8 bits and faint shading give on their
# own. Without it a heavy blur reads as sharp again: its edges are so gentle that the Laplacian of
# the rounding noise dominates (a 256 px shot blurred by 16 px measured 1.98; by 4 px, 0.18).
_GRADIENT_FLOOR = 2.0


def sharpness(image: np.ndarray, thresholds: CheckThresholds = DEFAULT_THRESHOLDS) -> float | None:
    """Variance of the Laplacian (3×3) over the mean squared gradient of the grey image; None
    when the image is practically uniform.

    Two normalisations make one threshold work from 32 to 1024 px and for any contrast. Dividing
    by the gradient energy cancels contrast (a dim purple box on a dark backdrop has an eighth of
    the Laplacian variance of a yellow one, yet is as sharp) and leaves roughly 1 / (edge width
    in px)²: for a Gaussian-blurred step it is 1 / (2σ²), whatever the image size. Images larger
    than `sharpness_side` are shrunk first (area averaging), so a 1024 px image is judged for
    softness of ~4 px, which shows at full size, rather than of one pixel, which does not.
    Uniform noise gives 20, the value for independent pixels; pictures stay well below.
    """
    pixels = as_rgb_uint8(image)
    height, width = pixels.shape[:2]
    scale = thresholds.sharpness_side / max(height, width)
    if scale < 1.0:
        size = (max(3, round(width * scale)), max(3, round(height * scale)))
        pixels = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BOX))
    grey = _luma(pixels)
    # Only a practically uniform image has nothing to judge; a blurred small subject on a dark
    # backdrop can be as low as std 5.6, below `flat_std`, and must still read as blurred.
    if min(grey.shape) < 3 or grey.std() < _UNIFORM_STD:
        return None
    centre = grey[1:-1, 1:-1]
    laplacian = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * centre
    grad_x = (grey[1:-1, 2:] - grey[1:-1, :-2]) / 2
    grad_y = (grey[2:, 1:-1] - grey[:-2, 1:-1]) / 2
    return float(laplacian.var() / ((grad_x**2 + grad_y**2).mean() + _GRADIENT_FLOOR))


def _too_flat(check: str) -> CheckResult:
    return CheckResult(check, True, 0.0, "The image is too flat to judge its sharpness.", None)


def blur(image: np.ndarray, thresholds: CheckThresholds = DEFAULT_THRESHOLDS) -> CheckResult:
    """Fail a blurred image: soft edges everywhere (see `sharpness`)."""
    value = sharpness(image, thresholds)
    if value is None:
        return _too_flat("blur")
    limit = thresholds.blurred_sharpness
    passed = value >= limit
    if passed:
        reason = f"The image is sharp (sharpness {value:.2f}, threshold {limit:.2f})."
    else:
        reason = f"Blurred: edges are soft (sharpness {value:.2f}, threshold {limit:.2f})."
    return CheckResult("blur", passed, _confidence(value, limit, limit), reason, value)


def noise(image: np.ndarray, thresholds: CheckThresholds = DEFAULT_THRESHOLDS) -> CheckResult:
    """Fail an image that is random noise rather than a picture (see `sharpness`)."""
    value = sharpness(image, thresholds)
    if value is None:
        return _too_flat("noise")
    limit = thresholds.noisy_sharpness
    passed = value <= limit
    if passed:
        reason = f"The image is not noise (fine detail {value:.1f}, threshold {limit:.0f})."
    else:
        reason = (
            f"The image looks like random noise, not a picture "
            f"(fine detail {value:.1f}, threshold {limit:.0f})."
        )
    return CheckResult("noise", passed, _confidence(value, limit, limit / 2), reason, value)


def wrong_size(image: np.ndarray, expected_size: tuple[int, int]) -> CheckResult:
    """Fail an image whose (width, height) is not the job's."""
    height, width = as_rgb_uint8(image).shape[:2]
    expected_width, expected_height = expected_size
    passed = (width, height) == (expected_width, expected_height)
    if passed:
        reason = f"The image is {width}×{height} px, as requested."
    else:
        reason = (
            f"Wrong size: the image is {width}×{height} px, "
            f"but {expected_width}×{expected_height} px was requested."
        )
    return CheckResult("wrong_size", passed, 1.0, reason, None)


# The DCT-II basis for a 32-point signal, unnormalised like scipy.fftpack.dct (pHash's usual).
_HASH_SIDE = 32
_DCT = np.cos(
    np.pi * np.outer(np.arange(_HASH_SIDE), 2 * np.arange(_HASH_SIDE) + 1) / (2 * _HASH_SIDE)
)
_VISIBLE_CHANGE = 24.0  # of 255: eight times the noise of a re-encode, a change a viewer sees


def _thumbnail(image: np.ndarray) -> np.ndarray:
    """The image shrunk to 32×32 (H, W, 3) floats: what the hash and the comparison see."""
    small = Image.fromarray(as_rgb_uint8(image)).resize(
        (_HASH_SIDE, _HASH_SIDE), Image.Resampling.LANCZOS
    )
    return np.asarray(small, dtype=np.float64)


def _hash_of(thumbnail: np.ndarray) -> int:
    low = (_DCT @ _luma(thumbnail) @ _DCT.T)[:8, :8]
    return int(np.packbits(low > np.median(low)).view(">u8")[0])


def perceptual_hash(image: np.ndarray) -> int:
    """A 64-bit DCT hash (pHash): which of the 8×8 lowest frequencies of the grey image, shrunk
    to 32×32, are above their median. Small changes (noise, re-encoding) flip few bits."""
    return _hash_of(_thumbnail(image))


def near_duplicates(
    images: Sequence[np.ndarray], thresholds: CheckThresholds = DEFAULT_THRESHOLDS
) -> list[CheckResult]:
    """Per image, whether it nearly repeats an earlier output of the same job: of a pair, the
    first passes and the later one fails. A pair is a near-duplicate when its hashes are close
    and its thumbnails, mean colours aligned, barely differ (see `CheckThresholds`)."""
    thumbnails = [_thumbnail(image) for image in images]
    hashes = [_hash_of(thumbnail) for thumbnail in thumbnails]
    limit = thresholds.duplicate_distance
    results = []
    for index, (image_hash, thumbnail) in enumerate(zip(hashes, thumbnails, strict=True)):
        if index == 0:
            reason = "The first output of the job: nothing earlier to repeat."
            results.append(CheckResult("near_duplicate", True, 1.0, reason, None))
            continue
        distances = [(image_hash ^ earlier).bit_count() for earlier in hashes[:index]]
        repeats = [
            earlier
            for earlier, distance in enumerate(distances)
            if distance <= limit
            and _changed_share(thumbnail, thumbnails[earlier]) <= thresholds.duplicate_changed_share
        ]
        if repeats:
            earlier = min(repeats, key=lambda position: distances[position])
            distance = distances[earlier]
            reason = (
                f"A near-duplicate of output {earlier + 1} of this job "
                f"({distance} of 64 hash bits differ; threshold {limit})."
            )
            confidence = _confidence(distance, limit + 1, limit + 1)
            results.append(
                CheckResult("near_duplicate", False, confidence, reason, float(distance))
            )
            continue
        closest = int(np.argmin(distances))
        distance = distances[closest]
        reason = (
            f"Distinct from the job's other outputs (closest: output {closest + 1}, "
            f"{distance} of 64 hash bits differ)."
        )
        # Close hashes whose pictures differ are the uncertain case.
        confidence = _confidence(distance, limit, limit) if distance > limit else 0.75
        results.append(CheckResult("near_duplicate", True, confidence, reason, float(distance)))
    return results


def _changed_share(first: np.ndarray, second: np.ndarray) -> float:
    """The share of two thumbnails' pixels that differ visibly, their mean colours aligned."""
    difference = first - second
    aligned = difference - difference.reshape(-1, 3).mean(axis=0)
    return float((np.abs(aligned).max(axis=-1) > _VISIBLE_CHANGE).mean())


def _leading_run(edge: np.ndarray) -> int:
    """How many pixels at the start of `edge` are foreground in a row."""
    gaps = np.flatnonzero(~edge)
    return int(gaps[0]) if len(gaps) else len(edge)


def subject_cropped(
    image: np.ndarray, thresholds: CheckThresholds = DEFAULT_THRESHOLDS
) -> CheckResult:
    """Fail an image whose subject runs off the edge: foreground along part of a side.

    Foreground along nearly a whole side is a surface (a table, a floor) rather than a subject,
    and so is where it continues up the neighbouring sides from the corners.
    """
    mask = foreground_mask(image, thresholds)
    if mask is None:
        reason = "No plain backdrop to tell the subject from, so cropping was not judged."
        return CheckResult("subject_cropped", True, 0.0, reason, None)
    # Each side runs from one neighbouring side to the other: (pixels, first, last neighbour).
    sides = {
        "top": (mask[0], "left", "right"),
        "bottom": (mask[-1], "left", "right"),
        "left": (mask[:, 0], "top", "bottom"),
        "right": (mask[:, -1], "top", "bottom"),
    }
    surfaces = {
        side for side, (edge, _, _) in sides.items() if edge.mean() >= thresholds.surface_side_share
    }
    shares = {}
    for side, (edge, first, last) in sides.items():
        if side in surfaces:
            continue
        touched = edge.copy()
        if first in surfaces:
            touched[: _leading_run(edge)] = False
        if last in surfaces:
            touched[len(edge) - _leading_run(edge[::-1]) :] = False
        shares[side] = float(touched.mean())
    side, share = max(shares.items(), key=lambda item: item[1], default=("top", 0.0))
    limit = thresholds.cropped_side_share
    passed = share <= limit
    if passed:
        reason = f"The subject sits inside the frame ({share:.0%} of the {side} edge touched)."
    else:
        reason = (
            f"The subject is cut off at the {side} edge ({share:.0%} of that side; "
            f"threshold {limit:.0%})."
        )
    return CheckResult("subject_cropped", passed, _confidence(share, limit, limit), reason, share)


def subject_colour(
    image: np.ndarray, thresholds: CheckThresholds = DEFAULT_THRESHOLDS
) -> tuple[str, dict[str, float]]:
    """The named colour of the subject (of the whole image when there is no plain backdrop) and
    the share of its coloured pixels in each hue family (see `colour.name_colour`)."""
    pixels = as_rgb_uint8(image)
    mask = foreground_mask(pixels, thresholds)
    subject = pixels[mask] if mask is not None and mask.any() else pixels.reshape(-1, 3)
    return name_colour(
        subject,
        min_saturation=thresholds.coloured_saturation,
        min_value=thresholds.coloured_value,
        coloured_share=thresholds.coloured_share,
    )


def colour_expectation(
    image: np.ndarray, colour: str, thresholds: CheckThresholds = DEFAULT_THRESHOLDS
) -> CheckResult:
    """Pass when the subject's named colour is `colour` (one of `colour.COLOUR_NAMES`)."""
    expected = colour_name(colour)
    found, shares = subject_colour(image, thresholds)
    passed = found == expected
    top = sorted(shares.items(), key=lambda item: -item[1])[:2]
    detail = ", ".join(f"{name} {share:.0%}" for name, share in top if share > 0)
    mix = f" (coloured pixels: {detail})" if detail else ""
    if passed:
        reason = f"The subject is {found}, as expected{mix}."
    else:
        reason = f"Wrong colour: the subject looks {found}, not {expected}{mix}."
    # How clearly the subject is `found`: its family's lead over the next. Colourless and brown
    # verdicts rest on a lightness rule, not on a hue count, so they get a flat 0.75.
    if found in shares:
        lead = shares[found] - max(share for name, share in shares.items() if name != found)
        confidence = round(0.5 + 0.5 * min(1.0, 2 * lead), 3)
    else:
        confidence = 0.75
    return CheckResult("colour_expectation", passed, confidence, reason, shares.get(expected))


def run_image_checks(
    images: Sequence[np.ndarray],
    *,
    expected_size: tuple[int, int] | None,
    expected_colour: str | None = None,
    thresholds: CheckThresholds | None = None,
) -> list[list[CheckResult]]:
    """Every check on every output of one job; one list of results per image, in order.

    `expected_size` is (width, height), as on the job. The size and colour checks run only when
    there is an expectation to check against; near-duplicates are looked for among `images`.
    """
    limits = thresholds or DEFAULT_THRESHOLDS
    if expected_size is not None and (len(expected_size) != 2 or min(expected_size) < 1):
        raise ValueError(f"expected_size must be (width, height) in px, got {expected_size}.")
    if expected_colour is not None:
        colour_name(expected_colour)
    duplicates = near_duplicates(images, limits)
    results = []
    for image, duplicate in zip(images, duplicates, strict=True):
        image_results = [
            black_or_nan(image, limits),
            blank_or_flat(image, limits),
            exposure(image, limits),
            blur(image, limits),
            noise(image, limits),
        ]
        if expected_size is not None:
            image_results.append(wrong_size(image, expected_size))
        image_results += [duplicate, subject_cropped(image, limits)]
        if expected_colour is not None:
            image_results.append(colour_expectation(image, expected_colour, limits))
        results.append(image_results)
    return results
