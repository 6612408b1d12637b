"""Built-in image checks for the quality gate: defects a customer sees at a glance, found with
numpy and Pillow alone (no model, no torch, no Django).

Each check takes one RGB image as a numpy array of shape (H, W, 3): uint8, or float in [0, 1] as
a diffusers pipeline returns with ``output_type="np"``. In a float image NaNs count as black,
which is how they decode, and `black_or_nan` reports them. Each check returns a `CheckResult`:
whether the image passed, how sure the check is, a reason a marketer can read, and the measured
value its threshold applies to. `run_image_checks` runs the defect checks over the outputs of one
job; `backdrop` and `subject` answer rubric questions (see `check_judge`).

The defaults in `CheckThresholds` come from scripts/measure_image_checks.py, on two kinds of
picture: synthetic product shots (``models_registry.engine.shapes_data``) at 32 and 64 px, and
real renders of the built-in 32 px ``shapes`` model (seeds 2000-2015 of every caption, 526 good
ones), with each defect derived from them. The renders are softer, their backdrops mottled and
their outermost line of pixels off-tone; the first defaults, tuned on the synthetic shots alone,
flagged 261 of 544 good renders as blurred, 128 as cropped, 38 of the wrong colour and 31 as
badly exposed. The numbers quoted next to each default are from that script; the evaluation set
(tests/data/quality/, seeds 3000-3001) is held out from them.
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
    """Where each check draws its line, between good pictures and their defects: synthetic
    shots at 32 and 64 px (seeds 0-15) and renders of the shapes model (seeds 2000-2015). The
    figures below are the closest of each."""

    # A pixel is foreground when a channel differs from the backdrop (the median colour of the
    # line of pixels just inside the edge; see `foreground_mask`) by more than
    # `foreground_delta`; there is a plain backdrop only when at least `backdrop_share` of that
    # line is within that of its median. Good renders ≥ 0.66 plain; a patchwork behind the
    # subject ≤ 0.41.
    foreground_delta: int = 48
    backdrop_share: float = 0.5
    # blank_or_flat: the share of the image that is foreground. Good shots ≥ 0.042, good renders
    # ≥ 0.098 (a dim purple bottle on the dark backdrop, whose brightness varies less, std 7.7,
    # than an empty mottled white backdrop's, up to 14: hence not the std of old); flat fills
    # and empty backdrops 0.
    blank_subject_share: float = 0.01
    # black_or_nan: a pixel is black when no channel exceeds `black_level`; the image is black
    # when more than `black_share` of it is. Good shots have none (the darkest shadow is at 13).
    black_level: int = 4
    black_share: float = 0.95
    # exposure, under: the brightness (luma, 0-255) of the brightest 1% of pixels. The mean
    # would not do: a good shot on a dark backdrop averages 34, darker than an under-exposed
    # white one (~61); what under-exposure takes away is every bright tone. Good shots ≥ 77.2,
    # good renders ≥ 62.6 (a dim purple bottle on the dark backdrop) — as dark as a white shot
    # at a quarter of its exposure (≤ 63), so the line catches a fifth (≤ 51).
    underexposed_highlights: float = 55.0
    # exposure, over: the share of the subject (of the whole image when there is no plain
    # backdrop) that is blown out: two channels at or above `clipped_level`, or one with the
    # colour washed toward white (HSL lightness ≥ 0.65; a pure colour at full brightness has
    # 0.5). A vivid orange clipping only its red channel is not blown out: counting it, good
    # shots reach 0.63 clipped and overlap 3× exposure. As defined, good shots ≤ 0.20 and good
    # renders ≤ 0.33 (a bright yellow bottle on white clips two channels); at 3× exposure (more
    # for a dim render, see scripts/make_quality_set.py) ≥ 0.43 (shots ≥ 0.49).
    clipped_level: int = 250
    overexposed_share: float = 0.4
    # blur and noise: "sharpness" (see `sharpness`) on the image shrunk to at most
    # `sharpness_side` px, judged against `blur_limit`: `small_blurred_sharpness` up to
    # `small_side` px, `blurred_sharpness` from twice that. At 64 px and up, good shots ≥ 1.03
    # (≥ 1.10 at 256-1024 px), Gaussian blur of 1/32 of the side or more ≤ 0.33 and a box blur
    # of 1/12 ≤ 0.61. A 32 px render cannot be that sharp: a decoder's edges are about a pixel
    # wide there, and good renders measure ≥ 0.37 (big boxes on white), while the same blurred
    # by 1/16 of the side or two box passes of 1/12 measure ≤ 0.24 (shots at 32 px ≤ 0.26).
    # Uniform noise ≈ 20 (the value for independent pixels); good shots ≤ 7.7, renders ≤ 3.3.
    sharpness_side: int = 256
    blurred_sharpness: float = 0.8
    small_side: int = 32
    small_blurred_sharpness: float = 0.3
    noisy_sharpness: float = 12.0
    # near_duplicate: a pair is a candidate when its 64-bit DCT hashes differ in at most
    # `duplicate_distance` bits (copies with slight noise: ≤ 8 bits), and a duplicate when at
    # most `duplicate_changed_share` of their 32 px colour thumbnails differs visibly: a channel
    # off by more than 24 of 255 once the mean colours are aligned (copies: none; shots of one
    # prompt from different seeds: ≥ 3 of 1024 pixels). The hash alone can't decide: on a plain
    # backdrop it mostly describes the backdrop, and 2% of such pairs, with a visibly bigger or
    # smaller subject, are within 4 bits. The thumbnails also keep a recoloured copy distinct.
    # The shapes model draws some prompts the same whatever the seed (20 of 576 renders repeat
    # another of 16 seeds): those are duplicates, and flagged.
    duplicate_distance: int = 10
    duplicate_changed_share: float = 0.002
    # The subject's body: foreground at least `body_contrast` of the way to its strongest
    # contrast with the backdrop. A soft render's fringe and its shadow are foreground too, but
    # blend into the backdrop and take its tint: counted, they put 78 of 288 good renders'
    # subjects over an edge, and the dark backdrop's teal tint named the white blob the model
    # draws for "a purple box on a dark background" cyan.
    body_contrast: float = 0.5
    # subject_cropped: body along more than this share of one side means the subject runs off
    # the image. Good shots touch 0; good renders mostly ≤ 0.10, but 21 of 526 (4%) reach 0.13
    # or more, most of them bottles on white drawn from the top edge down, which do touch it; a
    # subject moved half out of the frame ≥ 0.13 (shots) and 5 of 132 renders' below 0.11.
    cropped_side_share: float = 0.11
    # Foreground along this much of a side is a surface (a table, a floor), not a subject.
    surface_side_share: float = 0.9
    # subject: one clear subject is a body of at least `min_subject_share` of the image (good
    # renders ≥ 0.073) whose largest connected part holds `main_subject_share` of it (≥ 0.74).
    min_subject_share: float = 0.01
    main_subject_share: float = 0.6
    # colour_expectation: the subject's body's pixels count as coloured with at least this HSV
    # saturation and value; the subject is colourless (white, grey, black) when fewer than
    # `coloured_share` of them are coloured (good renders ≥ 0.51; the shapes model's white blob
    # for "a purple box on a dark background" ≤ 0.39). Otherwise its colour is its most common
    # hue family. Good shots: ≥ 94% of coloured pixels in their own family; rotated by 90° or
    # more: ≤ 5%.
    coloured_saturation: float = 0.3
    coloured_value: float = 0.15
    coloured_share: float = 0.45


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


def _inside_border(image: np.ndarray) -> np.ndarray:
    """The image without its outermost line of pixels, which decoders draw off-tone (see
    `foreground_mask`); images under 8 px are kept whole."""
    return image[1:-1, 1:-1] if min(image.shape[:2]) >= 8 else image


def _backdrop_contrast(
    image: np.ndarray, thresholds: CheckThresholds = DEFAULT_THRESHOLDS
) -> np.ndarray | None:
    """How far each pixel inside the outermost line (see `_inside_border`) is from the backdrop:
    the largest channel difference from the median colour of the line just inside the edge. None
    when that line is not a plain backdrop (less than `backdrop_share` of it near its median)."""
    pixels = _inside_border(as_rgb_uint8(image)).astype(np.int16)
    frame = _frame(pixels)
    backdrop = np.median(frame, axis=0)
    frame_delta = np.abs(frame - backdrop).max(axis=-1)
    if (frame_delta <= thresholds.foreground_delta).mean() < thresholds.backdrop_share:
        return None
    return np.abs(pixels - backdrop).max(axis=-1)


def _inner_foreground(
    image: np.ndarray, thresholds: CheckThresholds = DEFAULT_THRESHOLDS
) -> np.ndarray | None:
    """`foreground_mask` of the image inside its outermost line (see `_inside_border`)."""
    contrast = _backdrop_contrast(image, thresholds)
    return None if contrast is None else contrast > thresholds.foreground_delta


def _subject_body(
    image: np.ndarray, thresholds: CheckThresholds = DEFAULT_THRESHOLDS
) -> np.ndarray | None:
    """The subject's body inside the outermost line: foreground at least `body_contrast` of
    the way to the subject's strongest contrast (98th percentile) with the backdrop. A soft
    render's fringe is foreground too, but it blends into the backdrop and takes its tint."""
    contrast = _backdrop_contrast(image, thresholds)
    if contrast is None:
        return None
    strongest = float(np.percentile(contrast, 98))
    return contrast > max(thresholds.foreground_delta, thresholds.body_contrast * strongest)


def foreground_mask(
    image: np.ndarray, thresholds: CheckThresholds = DEFAULT_THRESHOLDS
) -> np.ndarray | None:
    """Pixels that differ strongly from the backdrop, or None when there is no plain backdrop
    (a busy scene), where subject and background can't be told apart this way.

    The backdrop is the median colour of the line of pixels just inside the image's edge, and
    the outermost line itself never counts as foreground: a VAE decoder draws that line
    off-tone. On the shapes model's renders it averages luma 219 on white backdrops whose next
    line is at 247, and 58 on dark ones at 30; taken as the backdrop, it made much of a white
    backdrop foreground, and its subject read as over-exposed or cut off.
    """
    inner = _inner_foreground(image, thresholds)
    if inner is None:
        return None
    height, width = np.asarray(image).shape[:2]
    if inner.shape == (height, width):
        return inner
    mask = np.zeros((height, width), dtype=bool)
    mask[1:-1, 1:-1] = inner
    return mask


def blank_or_flat(
    image: np.ndarray, thresholds: CheckThresholds = DEFAULT_THRESHOLDS
) -> CheckResult:
    """Fail a flat fill or an empty backdrop: a plain backdrop with (almost) nothing on it."""
    contrast = _backdrop_contrast(image, thresholds)
    if contrast is None:
        reason = "The image has visible content (no plain backdrop: a scene or a pattern)."
        return CheckResult("blank_or_flat", True, 1.0, reason, None)
    share = float((contrast > thresholds.foreground_delta).mean())
    limit = thresholds.blank_subject_share
    passed = share >= limit
    if passed:
        reason = f"The image has visible content ({share:.0%} of it stands out from the backdrop)."
    else:
        reason = (
            f"The image is blank: almost nothing stands out from the backdrop ({share:.1%} of "
            f"its pixels; threshold {limit:.0%})."
        )
    return CheckResult("blank_or_flat", passed, _confidence(share, limit, limit), reason, share)


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


def blur_limit(side: int, thresholds: CheckThresholds = DEFAULT_THRESHOLDS) -> float:
    """The sharpness below which an image whose longer side is `side` px reads as blurred:
    `small_blurred_sharpness` up to `small_side`, `blurred_sharpness` from twice that, linear in
    between (see `CheckThresholds`)."""
    low, high = thresholds.small_side, 2 * thresholds.small_side
    position = min(1.0, max(0.0, (side - low) / (high - low)))
    small, large = thresholds.small_blurred_sharpness, thresholds.blurred_sharpness
    return small + position * (large - small)


def blur(image: np.ndarray, thresholds: CheckThresholds = DEFAULT_THRESHOLDS) -> CheckResult:
    """Fail a blurred image: soft edges everywhere (see `sharpness` and `blur_limit`)."""
    value = sharpness(image, thresholds)
    if value is None:
        return _too_flat("blur")
    limit = blur_limit(max(np.asarray(image).shape[:2]), thresholds)
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
    """Fail an image whose subject runs off the edge: its body (see `_subject_body`) along part
    of a side, on the line just inside the outermost one (see `foreground_mask`).

    Body along nearly a whole side is a surface (a table, a floor) rather than a subject, and so
    is where it continues up the neighbouring sides from the corners.
    """
    mask = _subject_body(image, thresholds)
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
    """The named colour of the subject's body (see `_subject_body`; of the whole image when there
    is no plain backdrop) and the share of its coloured pixels in each hue family (see
    `colour.name_colour`)."""
    pixels = as_rgb_uint8(image)
    body = _subject_body(pixels, thresholds)
    inner = _inside_border(pixels)
    subject = inner[body] if body is not None and body.any() else pixels.reshape(-1, 3)
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


# What a backdrop question may ask besides a colour name: its tone, as (luma range, colourless).
BACKDROP_TONES: dict[str, tuple[float, float, bool]] = {
    "white": (180.0, 255.0, True),
    "light": (150.0, 255.0, False),
    "grey": (64.0, 180.0, True),
    "dark": (0.0, 100.0, False),
    "black": (0.0, 64.0, True),
}
_COLOURLESS_CHROMA = 40  # of 255: max minus min channel of a backdrop that reads as neutral


def backdrop(
    image: np.ndarray, tone: str | None = None, thresholds: CheckThresholds = DEFAULT_THRESHOLDS
) -> CheckResult:
    """Pass a plain backdrop: at least `backdrop_share` of the line just inside the edge
    within `foreground_delta` of its median colour. With a `tone` (a `BACKDROP_TONES` key or a
    `colour.COLOUR_NAMES` name) the backdrop must also be that: by its median's luma and chroma,
    or by the named colour of the line's pixels. ``value`` is the plain share."""
    pixels = _inside_border(as_rgb_uint8(image)).astype(np.int16)
    frame = _frame(pixels)
    median = np.median(frame, axis=0)
    share = float((np.abs(frame - median).max(axis=-1) <= thresholds.foreground_delta).mean())
    limit = thresholds.backdrop_share
    confidence = _confidence(share, limit, min(limit, 1.0 - limit))
    if share < limit:
        reason = (
            f"The background is not plain: only {share:.0%} of the image's edge is close to one "
            f"colour (threshold {limit:.0%})."
        )
        return CheckResult("backdrop", False, confidence, reason, share)
    luma = float(median @ _LUMA)
    chroma = float(median.max() - median.min())
    described = f"plain (luma {luma:.0f} of 255, {share:.0%} of the edge one colour)"
    if tone is None:
        return CheckResult("backdrop", True, confidence, f"The background is {described}.", share)
    if tone in BACKDROP_TONES:
        low, high, colourless = BACKDROP_TONES[tone]
        matches = low <= luma <= high and (not colourless or chroma <= _COLOURLESS_CHROMA)
        if not matches:
            confidence = 0.75
    else:
        expected = colour_name(tone)
        found, _ = name_colour(
            frame.astype(np.uint8),
            min_saturation=thresholds.coloured_saturation,
            min_value=thresholds.coloured_value,
            coloured_share=thresholds.coloured_share,
        )
        matches = found == expected
        if not matches:
            described += f", and {found}"
    if matches:
        reason = f"The background is {described}: {tone}, as asked."
    else:
        reason = f"The background is not {tone}: it is {described}."
    return CheckResult("backdrop", matches, confidence, reason, share)


def _components(mask: np.ndarray) -> list[int]:
    """Sizes of the 4-connected components of a boolean mask, largest first."""
    labels = np.zeros(mask.shape, dtype=np.int32)
    height, width = mask.shape
    sizes = []
    for start in zip(*np.nonzero(mask), strict=True):
        if labels[start]:
            continue
        labels[start] = len(sizes) + 1
        stack, size = [start], 0
        while stack:
            y, x = stack.pop()
            size += 1
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < height and 0 <= nx < width and mask[ny, nx] and not labels[ny, nx]:
                    labels[ny, nx] = len(sizes) + 1
                    stack.append((ny, nx))
        sizes.append(size)
    return sorted(sizes, reverse=True)


_SUBJECT_SIDE = 64  # the subject's body is judged on a mask shrunk to at most this side


def subject(image: np.ndarray, thresholds: CheckThresholds = DEFAULT_THRESHOLDS) -> CheckResult:
    """Pass one clear subject, whole: its body (see `_subject_body`) covers at least
    `min_subject_share` of the image, one connected part holds `main_subject_share` of it, and
    it is not cut off at the edge (`subject_cropped`). Not judged (passed, confidence 0) without
    a plain backdrop. ``value`` is the largest part's share of the body."""
    body = _subject_body(image, thresholds)
    if body is None:
        reason = "No plain backdrop to tell the subject from, so the subject was not judged."
        return CheckResult("subject", True, 0.0, reason, None)
    area = float(body.mean())
    if area < thresholds.min_subject_share:
        reason = (
            f"No clear subject: only {area:.1%} of the image stands out from the background "
            f"(threshold {thresholds.min_subject_share:.0%})."
        )
        return CheckResult("subject", False, 0.75, reason, 0.0)
    step = max(1, -(-max(body.shape) // _SUBJECT_SIDE))
    parts = _components(body[::step, ::step])
    main = parts[0] / sum(parts)
    limit = thresholds.main_subject_share
    if main < limit:
        reason = (
            f"No single main subject: the largest of {len(parts)} separate parts is {main:.0%} "
            f"of what stands out (threshold {limit:.0%})."
        )
        return CheckResult("subject", False, _confidence(main, limit, limit), reason, main)
    cropping = subject_cropped(image, thresholds)
    if not cropping.passed:
        return CheckResult("subject", False, cropping.confidence, cropping.reason, main)
    reason = f"One clear subject ({main:.0%} of what stands out), whole: {cropping.reason}"
    return CheckResult("subject", True, cropping.confidence, reason, main)


# "Is the product inside box B?": the salient region's centre must lie in the box, and at least
# this share of it — the product may overhang a tight box a little, as a drawn box is rough.
INSIDE_BOX_SHARE = 0.6


def salient_region(
    image: np.ndarray, thresholds: CheckThresholds = DEFAULT_THRESHOLDS
) -> tuple[np.ndarray, tuple[float, float]] | None:
    """The subject's body (what differs from the backdrop; see `_subject_body`) and its centre
    of mass (x, y) relative to the frame; None without a plain backdrop or a subject."""
    body = _subject_body(image, thresholds)
    if body is None or not body.any():
        return None
    height, width = body.shape
    rows, cols = np.nonzero(body)
    # `body` lies inside the outermost line of pixels: +1 puts it back in the image's frame.
    full_h, full_w = np.asarray(image).shape[:2]
    offset = (full_h - height) // 2
    centre = ((cols.mean() + offset + 0.5) / full_w, (rows.mean() + offset + 0.5) / full_h)
    return body, (float(centre[0]), float(centre[1]))


def inside_box(
    image: np.ndarray,
    box: Sequence[float],
    thresholds: CheckThresholds = DEFAULT_THRESHOLDS,
    *,
    share: float = INSIDE_BOX_SHARE,
) -> CheckResult:
    """Pass when the product — the salient region, what stands out from the backdrop — is in
    ``box`` (x0, y0, x1, y1, relative to the frame): its centre inside, and at least ``share``
    of it. ``value`` is the share inside. Not judged (passed, confidence 0) without a plain
    backdrop; failed when nothing stands out."""
    x0, y0, x1, y1 = (float(v) for v in box)
    found = salient_region(image, thresholds)
    if found is None:
        if _backdrop_contrast(image, thresholds) is None:
            reason = "No plain backdrop to tell the product from, so its place was not judged."
            return CheckResult("inside_box", True, 0.0, reason, None)
        return CheckResult("inside_box", False, 0.75, "Nothing stands out from the backdrop.", 0.0)
    body, (cx, cy) = found
    full_h, full_w = np.asarray(image).shape[:2]
    offset = (full_h - body.shape[0]) // 2
    ys = (np.arange(body.shape[0]) + offset + 0.5) / full_h
    xs = (np.arange(body.shape[1]) + offset + 0.5) / full_w
    in_box = ((ys >= y0) & (ys <= y1))[:, None] & ((xs >= x0) & (xs <= x1))[None, :]
    inside = float((body & in_box).sum() / body.sum())
    centred = x0 <= cx <= x1 and y0 <= cy <= y1
    where = (
        f"centre ({cx:.2f}, {cy:.2f}), {inside:.0%} of it inside [{x0:g}, {y0:g}, {x1:g}, {y1:g}]"
    )
    passed = centred and inside >= share
    if passed:
        reason = f"The product is in the box: {where}."
        return CheckResult(
            "inside_box", True, _confidence(inside, share, 1 - share), reason, inside
        )
    return CheckResult(
        "inside_box",
        False,
        0.9 if not centred else _confidence(inside, share, share),
        f"The product is not in the box: {where} (needs its centre and {share:.0%} of it).",
        inside,
    )


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
