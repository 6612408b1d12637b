"""Training images as the UNet sees them: upright, RGB, square at the training resolution, and in
[-1, 1] — what diffusers' DreamBooth examples get from torchvision's Resize, CenterCrop, ToTensor
and Normalize, done here with PIL and numpy (torchvision is not installed). `to_rgb` and
`fit_square` also normalize uploads in `training.uploads`, so torch is imported only by the
tensor steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps

if TYPE_CHECKING:
    import torch

# A product photo with a transparent background is a product on white, not on black (what
# dropping the alpha channel would give).
TRANSPARENT_BACKDROP = (255, 255, 255)


def to_rgb(image: Image.Image) -> Image.Image:
    """Turn `image` upright (its EXIF orientation) and into RGB, transparency over white."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        backdrop = Image.new("RGBA", rgba.size, (*TRANSPARENT_BACKDROP, 255))
        return Image.alpha_composite(backdrop, rgba).convert("RGB")
    return image.convert("RGB")


def fit_square(image: Image.Image, resolution: int) -> Image.Image:
    """Resize so the shorter side is `resolution`, then crop the centre square."""
    width, height = image.size
    scale = resolution / min(width, height)
    size = (max(resolution, round(width * scale)), max(resolution, round(height * scale)))
    if size != image.size:
        image = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
    left = (image.width - resolution) // 2
    top = (image.height - resolution) // 2
    return image.crop((left, top, left + resolution, top + resolution))


def to_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB image as a (3, H, W) float tensor in [-1, 1]."""
    import torch  # here: the web process uses `to_rgb` and `fit_square` without torch

    pixels = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy())


def training_pixels(images: Sequence[Image.Image], resolution: int) -> torch.Tensor:
    """A (N, 3, resolution, resolution) batch in [-1, 1] from photos of any size and mode."""
    import torch

    if not images:
        raise ValueError("At least one image is needed.")
    for index, image in enumerate(images):
        if not isinstance(image, Image.Image):
            raise TypeError(f"Image {index} is a {type(image).__name__}, not a PIL image.")
    return torch.stack([to_tensor(fit_square(to_rgb(image), resolution)) for image in images])
