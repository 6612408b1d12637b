"""Synthetic "product shots" for the `shapes` model: seeded images with captions in Easel's style.

Each shot is a product-like shape (an apple, a box or a bottle) in one of six named colours, at a
varied size and position, lit from the top left, with a soft shadow, on a white or a dark
background — rendered at 2× and averaged down to 32×32 so edges are anti-aliased. Its caption is
the prompt a marketer would type: "a red apple on a white background".

Everything is drawn with numpy from a `numpy.random.Generator`, so a seed fixes the data set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Named colours (sRGB) with well separated hues: 0°, ~32°, ~54°, ~134°, ~223°, ~279°.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 20),
    "yellow": (235, 215, 35),
    "green": (40, 170, 70),
    "blue": (40, 90, 215),
    "purple": (140, 55, 185),
}
SHAPES: tuple[str, ...] = ("apple", "box", "bottle")
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (244, 244, 241),
    "dark": (32, 32, 36),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)
BACKGROUND_NAMES: tuple[str, ...] = tuple(BACKGROUNDS)
IMAGE_SIZE = 32
_SUPERSAMPLE = 2
_CHUNK = 256


@dataclass(frozen=True)
class Placement:
    """Where shots put their product: uniform ranges (relative to the frame) of the product's
    horizontal centre, the line it stands on, and its size."""

    centre_x: tuple[float, float] = (0.36, 0.64)
    ground: tuple[float, float] = (0.74, 0.9)
    scale: tuple[float, float] = (0.6, 1.0)


# The catalogue framing the `shapes` model is trained on: centred, standing low.
CENTRED = Placement()
# Anywhere in the frame, smaller: what a grounded (layout) model learns boxes from.
ANYWHERE = Placement(centre_x=(0.2, 0.8), ground=(0.35, 0.95), scale=(0.45, 0.85))


def caption_for(colour: str, shape: str, background: str) -> str:
    """The prompt for one shot, in the platform's prompt style ("an orange box on a dark ...")."""
    article = "an" if colour[0] in "aeiou" else "a"
    return f"{article} {colour} {shape} on a {background} background"


@dataclass(frozen=True)
class ShapesDataset:
    """Images (N, H, W, 3) uint8, their captions, and the label indices they were drawn from."""

    images: np.ndarray
    captions: list[str]
    colour_ids: np.ndarray
    shape_ids: np.ndarray
    background_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.captions)


def _render_chunk(
    colour_ids: np.ndarray,
    shape_ids: np.ndarray,
    background_ids: np.ndarray,
    rng: np.random.Generator,
    size: int,
    placement: Placement = CENTRED,
) -> tuple[np.ndarray, np.ndarray]:
    """Render a batch of shots at `_SUPERSAMPLE`× and average down to `size`×`size`; also
    return each product's bounding box (x0, y0, x1, y1), relative to the frame."""
    n = len(colour_ids)
    res = size * _SUPERSAMPLE
    coords = (np.arange(res, dtype=np.float32) + 0.5) / res
    y = coords[None, :, None]
    x = coords[None, None, :]

    def column(low: float, high: float) -> np.ndarray:
        return rng.uniform(low, high, size=(n, 1, 1)).astype(np.float32)

    centre_x = column(*placement.centre_x)
    ground = column(*placement.ground)  # where the object stands
    scale = column(*placement.scale)  # relative object size
    brightness = column(0.9, 1.08)
    box_aspect = column(0.8, 1.3)
    dx = x - centre_x

    colours = np.array([COLOURS[name] for name in COLOUR_NAMES], dtype=np.float32)[colour_ids]
    base = (colours * brightness[:, :, 0]).reshape(n, 1, 1, 3) / 255.0
    backgrounds = np.array([BACKGROUNDS[name] for name in BACKGROUND_NAMES], dtype=np.float32)
    is_white = (background_ids == 0).reshape(n, 1, 1)
    bg = backgrounds[background_ids].reshape(n, 1, 1, 3) / 255.0
    # A faint vertical fall-off of the backdrop, as under a studio light.
    canvas = bg * (1.03 - 0.08 * y)[..., None] * np.ones((n, res, res, 1), dtype=np.float32)

    # Apple: a sphere-shaded disc with a short brown stem.
    radius = 0.2 * scale
    apple_cy = ground - radius
    apple_d2 = (dx**2 + (y - apple_cy) ** 2) / radius**2
    apple_body = apple_d2 <= 1.0
    normal_z = np.sqrt(np.clip(1.0 - apple_d2, 0.0, 1.0))
    light = np.clip(
        (-0.45 * dx / radius - 0.5 * (y - apple_cy) / radius + 0.74 * normal_z), 0.0, 1.0
    )
    apple_shade = 0.35 + 0.75 * light
    apple_spec = 0.5 * np.clip(light - 0.9, 0.0, 1.0) / 0.1
    stem = (np.abs(dx) < 0.018) & (y > apple_cy - radius - 0.07) & (y < apple_cy - radius + 0.03)

    # Box: a front face, a lighter top face and a darker side face (a simple oblique view).
    box_h = 0.42 * scale
    box_w = box_h * box_aspect
    depth = 0.22 * np.minimum(box_w, box_h)
    left = centre_x - box_w / 2 - depth / 2
    right = left + box_w
    top = ground - box_h
    front = (x >= left) & (x <= right) & (y >= top) & (y <= ground)
    lift = top - y  # how far above the front face's top edge
    top_face = (lift > 0) & (lift <= depth) & (x >= left + lift) & (x <= right + lift)
    run = x - right  # how far right of the front face
    side = (run > 0) & (run <= depth) & (y >= top - run) & (y <= ground - run)
    box_shade = np.where(top_face, 1.15, np.where(side, 0.62, 0.9 - 0.15 * (y - top) / box_h))

    # Bottle: a cylinder-shaded body, rounded shoulders, a narrow neck and a dark cap.
    bottle_h = 0.62 * scale
    bottle_w = 0.22 * scale
    body_top = ground - 0.62 * bottle_h
    shoulder_h = 0.4 * bottle_w
    half_w = bottle_w / 2
    body = (np.abs(dx) <= half_w) & (y >= body_top) & (y <= ground)
    rise = np.clip((body_top - y) / shoulder_h, 0.0, 1.0)
    shoulder = (
        (y < body_top)
        & (y >= body_top - shoulder_h)
        & (np.abs(dx) <= half_w * np.sqrt(1.0 - rise**2))
    )
    neck_top = ground - bottle_h
    neck = (np.abs(dx) <= 0.2 * bottle_w) & (y >= neck_top + 0.04) & (y < body_top)
    cap = (np.abs(dx) <= 0.24 * bottle_w) & (y >= neck_top) & (y < neck_top + 0.04)
    across = np.clip(dx / half_w, -1.0, 1.0)
    bottle_shade = 0.45 + 0.6 * np.sqrt(1.0 - across**2) - 0.15 * across
    bottle_spec = 0.45 * np.exp(-(((across + 0.45) / 0.12) ** 2))

    shape = shape_ids.reshape(n, 1, 1)
    is_apple, is_box, is_bottle = shape == 0, shape == 1, shape == 2

    # Soft shadow on the floor, slightly to the right (the light is top left).
    half_width = np.where(is_apple, radius, np.where(is_box, (box_w + depth) / 2, half_w))
    shadow = np.exp(
        -(((dx - 0.25 * half_width) / (1.25 * half_width)) ** 2 + ((y - ground) / 0.035) ** 2)
    )
    shadow_strength = np.where(is_white, 0.45, 0.6)
    canvas = canvas * (1.0 - shadow_strength * shadow)[..., None]

    body_mask = (
        (is_apple & apple_body)
        | (is_box & (front | top_face | side))
        | (is_bottle & (body | shoulder | neck))
    )
    shade = np.where(is_apple, apple_shade, np.where(is_box, box_shade, bottle_shade))
    spec = np.where(is_apple, apple_spec, np.where(is_bottle & (body | shoulder), bottle_spec, 0.0))
    surface = base * shade[..., None] + spec[..., None] * (1.0 - base)
    canvas = np.where(body_mask[..., None], surface, canvas)
    stem_mask = is_apple & stem & ~apple_body
    canvas = np.where(stem_mask[..., None], np.array([0.36, 0.24, 0.12], dtype=np.float32), canvas)
    cap_mask = is_bottle & cap
    canvas = np.where(cap_mask[..., None], base * 0.45, canvas)

    canvas = canvas.reshape(n, size, _SUPERSAMPLE, size, _SUPERSAMPLE, 3).mean(axis=(2, 4))
    pixels = np.clip(np.rint(canvas * 255.0), 0, 255).astype(np.uint8)
    return pixels, _bounding_boxes(body_mask | stem_mask | cap_mask)


def _bounding_boxes(masks: np.ndarray) -> np.ndarray:
    """(N, 4) float32 boxes (x0, y0, x1, y1) of (N, H, W) masks, relative to the frame; an empty
    mask (a product pushed out of the frame) gets the whole frame."""
    n, height, width = masks.shape
    boxes = np.tile(np.array([0.0, 0.0, 1.0, 1.0], dtype=np.float32), (n, 1))
    for index, mask in enumerate(masks):
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if len(rows):
            boxes[index] = (
                cols[0] / width,
                rows[0] / height,
                (cols[-1] + 1) / width,
                (rows[-1] + 1) / height,
            )
    return boxes


def render_shots(
    colours: list[str],
    shapes: list[str],
    backgrounds: list[str],
    seed: int,
    size: int = IMAGE_SIZE,
) -> np.ndarray:
    """Render the given (colour, shape, background) triples; returns (N, size, size, 3) uint8."""
    return render_shots_with_boxes(colours, shapes, backgrounds, seed, size)[0]


def render_shots_with_boxes(
    colours: list[str],
    shapes: list[str],
    backgrounds: list[str],
    seed: int,
    size: int = IMAGE_SIZE,
    placement: Placement = CENTRED,
) -> tuple[np.ndarray, np.ndarray]:
    """`render_shots` placed by `placement`, and each product's box (N, 4), relative."""
    if not len(colours) == len(shapes) == len(backgrounds):
        raise ValueError("colours, shapes and backgrounds must have the same length")
    unknown = (
        (set(colours) - set(COLOURS))
        | (set(shapes) - set(SHAPES))
        | (set(backgrounds) - set(BACKGROUNDS))
    )
    if unknown:
        raise ValueError(f"unknown colour, shape or background names: {sorted(unknown)}")
    colour_ids = np.array([COLOUR_NAMES.index(c) for c in colours], dtype=np.int64)
    shape_ids = np.array([SHAPES.index(s) for s in shapes], dtype=np.int64)
    background_ids = np.array([BACKGROUND_NAMES.index(b) for b in backgrounds], dtype=np.int64)
    rng = np.random.default_rng(seed)
    chunks = [
        _render_chunk(
            colour_ids[start : start + _CHUNK],
            shape_ids[start : start + _CHUNK],
            background_ids[start : start + _CHUNK],
            rng,
            size,
            placement,
        )
        for start in range(0, len(colour_ids), _CHUNK)
    ]
    if not chunks:
        return np.zeros((0, size, size, 3), dtype=np.uint8), np.zeros((0, 4), dtype=np.float32)
    return (
        np.concatenate([images for images, _ in chunks]),
        np.concatenate([boxes for _, boxes in chunks]),
    )


def make_shapes_dataset(num_images: int, seed: int, size: int = IMAGE_SIZE) -> ShapesDataset:
    """Draw `num_images` shots with uniformly random colour, shape and background, seeded."""
    if num_images < 1:
        raise ValueError("num_images must be at least 1")
    rng = np.random.default_rng(seed)
    colour_ids = rng.integers(0, len(COLOUR_NAMES), size=num_images)
    shape_ids = rng.integers(0, len(SHAPES), size=num_images)
    background_ids = rng.integers(0, len(BACKGROUND_NAMES), size=num_images)
    colours = [COLOUR_NAMES[i] for i in colour_ids]
    shapes = [SHAPES[i] for i in shape_ids]
    backgrounds = [BACKGROUND_NAMES[i] for i in background_ids]
    images = render_shots(colours, shapes, backgrounds, seed=int(rng.integers(0, 2**31)), size=size)
    captions = [caption_for(c, s, b) for c, s, b in zip(colours, shapes, backgrounds, strict=True)]
    return ShapesDataset(
        images=images,
        captions=captions,
        colour_ids=colour_ids,
        shape_ids=shape_ids,
        background_ids=background_ids,
    )
