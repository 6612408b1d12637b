"""Named colours for the quality gate: the words a rubric question uses ("Is the bottle green?")
and how a subject's pixels map onto them. numpy only.

Chromatic names are hue families on the HSV circle; brown is a dark orange or red; white, grey
and black are what a subject with few coloured pixels is, by its lightness. The palette is
defined here rather than imported from the synthetic shots (``models_registry.engine
.shapes_data``), so that the gate judges the words a marketer uses, not one training set; their
six colours sit near the middles of the families of the same names, which the tests check.
"""

from __future__ import annotations

import numpy as np

# Hue families in degrees, [start, end); red wraps through 0°. The synthetic shots' colours are
# at red 0°, orange 32°, yellow 54°, green 134°, blue 223° and purple 279°. The shapes model
# renders them warmer and redder: its orange bottles on white at a median hue of 38-44°, its
# purples at 295-315° (a plum, not a pink: value ≈ 0.5, saturation ≈ 0.7), so orange reaches
# 45° (its yellow boxes sit at 51-56°) and purple 320°. Pink keeps 320-345°, where a pink such
# as (240, 90, 170) lies (328°).
_HUE_FAMILIES: tuple[tuple[str, float, float], ...] = (
    ("red", 345.0, 15.0),
    ("orange", 15.0, 45.0),
    ("yellow", 45.0, 70.0),
    ("green", 70.0, 165.0),
    ("cyan", 165.0, 195.0),
    ("blue", 195.0, 255.0),
    ("purple", 255.0, 320.0),
    ("pink", 320.0, 345.0),
)
_COLOURLESS = ("white", "grey", "black")
# Brown: a red or orange subject whose lit parts (90th percentile of HSV value) stay below this.
# The synthetic orange's lit parts are at ~0.95, a brown (139, 69, 19)'s at ~0.55.
_BROWN_MAX_VALUE = 0.65
# HSV value (median) from which a colourless subject is white, and below which it is black.
_WHITE_MIN_VALUE = 0.75
_BLACK_MAX_VALUE = 0.25
# Words a marketer may use for one of the names. Magenta (300°) is a purple here: it sits in the
# purple family, which reaches 320° (see `_HUE_FAMILIES`).
COLOUR_ALIASES: dict[str, str] = {"gray": "grey", "violet": "purple", "magenta": "purple"}

COLOUR_NAMES: tuple[str, ...] = (
    *(name for name, _, _ in _HUE_FAMILIES),
    "brown",
    *_COLOURLESS,
)


def colour_name(colour: str) -> str:
    """`colour` as one of `COLOUR_NAMES` ("Gray" → "grey"); ValueError if it is not one."""
    name = colour.strip().lower()
    name = COLOUR_ALIASES.get(name, name)
    if name not in COLOUR_NAMES:
        raise ValueError(f"Unknown colour '{colour}'; use one of {', '.join(COLOUR_NAMES)}.")
    return name


def _hsv(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hue in degrees and saturation and value in [0, 1] of (N, 3) uint8 pixels."""
    rgb = pixels.astype(np.float64) / 255.0
    high, low = rgb.max(axis=-1), rgb.min(axis=-1)
    spread = high - low
    safe_spread = np.where(spread > 0, spread, 1.0)
    red, green, blue = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    hue = np.select(
        [high == red, high == green],
        [((green - blue) / safe_spread) % 6, (blue - red) / safe_spread + 2],
        (red - green) / safe_spread + 4,
    )
    saturation = np.where(high > 0, spread / np.where(high > 0, high, 1.0), 0.0)
    return hue * 60.0, saturation, high


def _hue_family(hue: np.ndarray) -> np.ndarray:
    """Index into `_HUE_FAMILIES` of each hue."""
    family = np.zeros(hue.shape, dtype=np.int64)
    for index, (_, start, end) in enumerate(_HUE_FAMILIES):
        inside = (hue >= start) & (hue < end) if start < end else (hue >= start) | (hue < end)
        family[inside] = index
    return family


def name_colour(
    pixels: np.ndarray, *, min_saturation: float, min_value: float, coloured_share: float
) -> tuple[str, dict[str, float]]:
    """The colour name of (N, 3) uint8 subject pixels, and the share of the coloured ones (HSV
    saturation ≥ `min_saturation`, value ≥ `min_value`) in each hue family.

    With fewer than `coloured_share` of the pixels coloured, the subject is white, grey or black
    by its median value; otherwise it is its most common hue family, or brown (see above).
    """
    hue, saturation, value = _hsv(pixels)
    coloured = (saturation >= min_saturation) & (value >= min_value)
    families = _hue_family(hue[coloured])
    counts = np.bincount(families, minlength=len(_HUE_FAMILIES))
    total = max(1, int(coloured.sum()))
    shares = {
        name: float(count / total)
        for (name, _, _), count in zip(_HUE_FAMILIES, counts, strict=True)
    }
    if coloured.mean() < coloured_share:
        lightness = float(np.median(value))
        if lightness >= _WHITE_MIN_VALUE:
            return "white", shares
        return ("black" if lightness < _BLACK_MAX_VALUE else "grey"), shares
    dominant = int(np.argmax(counts))
    name = _HUE_FAMILIES[dominant][0]
    if name in ("red", "orange"):
        lit = float(np.quantile(value[coloured][families == dominant], 0.9))
        if lit < _BROWN_MAX_VALUE:
            return "brown", shares
    return name, shares
