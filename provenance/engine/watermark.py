"""The invisible watermark: 64 bits — a 48-bit id (the first 12 hex digits of the image's id) and a
16-bit check (CRC-16/CCITT-FALSE of the id) — embedded with invisible-watermark's dwtDct method.

dwtDct quantizes, in every 4×4 block of a frame's Haar LL band, the largest coefficient to an odd
or even quarter of ``SCALE`` for one bit, cycling through the 64 bits; reading takes the majority
of each bit's blocks. The check turns "some 64 bits" into "this id, or nothing": a picture without
the mark passes it by chance once in 65,536.

Two departures from ``WatermarkEncoder.encode(img, "dwtDct")``, each measured (``manage.py
watermark_report``; figures in the README):

- The luma (Y) channel, not U: JPEG keeps luma at full resolution and quantizes it finer, and
  chroma subsampling (4:2:0, Pillow's and most encoders' default) erased the U-channel mark at
  quality 90 in every image we tried.
- The wavelet transform around the library's ``encode_frame``/``decode_frame`` is done here, in
  floating point. ``EmbedMaxDct.encode`` in 0.2.0 swaps the horizontal and vertical detail bands
  when it inverts the transform (``pywt.idwt2((ca1, (v1, h1, d1)))``) and truncates to uint8,
  which distorts textured images (PSNR 31 dB, visible) regardless of the mark; done right the
  mark costs 47 dB.

The ``imwatermark`` package is not imported: its ``__init__`` imports its rivaGan module and so
torch, which the web process (that detects marks in uploads) never loads. ``maxDct.py`` needs only
numpy, OpenCV and PyWavelets, so it is loaded from the installed package by path.
"""

from __future__ import annotations

import binascii
import functools
import importlib.util
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

SCALE = 24  # 16 lost JPEG q75 on textured images; 32 cost 3 dB more for nothing (measured)
ID_BYTES = 6
BITS = (ID_BYTES + 2) * 8
# CRC-16/CCITT-FALSE: with 0 as the initial value, the all-zero bits a flat picture reads as would
# pass the check.
CRC_INIT = 0xFFFF
# The library refuses smaller images (fewer than 1,024 blocks: 16 per bit).
MIN_PIXELS = 256 * 256


class WatermarkTooSmall(ValueError):
    pass


@functools.cache
def _embed_max_dct() -> Any:
    """invisible-watermark's dwtDct implementation class, ``imwatermark.maxDct.EmbedMaxDct``."""
    spec = importlib.util.find_spec("imwatermark")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("invisible-watermark is not installed (see requirements-nodeps.txt).")
    path = Path(next(iter(spec.submodule_search_locations))) / "maxDct.py"
    module_spec = importlib.util.spec_from_file_location("easel_imwatermark_maxdct", path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"Cannot load {path}.")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.EmbedMaxDct


def watermark_id(image_id: uuid.UUID | str) -> str:
    """The 12 hex digits (48 bits) of an image id that its watermark carries."""
    return uuid.UUID(str(image_id)).hex[: ID_BYTES * 2]


def _bits(mark: str) -> list[int]:
    ident = bytes.fromhex(mark)
    if len(ident) != ID_BYTES:
        raise ValueError(f"A watermark id is {ID_BYTES * 2} hex digits, not {mark!r}.")
    check = binascii.crc_hqx(ident, CRC_INIT).to_bytes(2, "big")
    return [int(b) for b in np.unpackbits(np.frombuffer(ident + check, dtype=np.uint8))]


def fits(width: int, height: int) -> bool:
    return width * height >= MIN_PIXELS


def _luma_band(image: Image.Image) -> tuple[np.ndarray, int, int]:
    import cv2

    yuv = cv2.cvtColor(np.asarray(image.convert("RGB"), dtype=np.float32), cv2.COLOR_RGB2YUV)
    height, width = yuv.shape[0] // 4 * 4, yuv.shape[1] // 4 * 4
    return yuv, height, width


def embed(image: Image.Image, mark: str) -> Image.Image:
    """``image`` (RGB) with ``mark`` (``watermark_id``) embedded."""
    import cv2
    import pywt

    if not fits(*image.size):
        raise WatermarkTooSmall(
            f"A watermark needs at least {MIN_PIXELS:,} pixels; this image has "
            f"{image.width}×{image.height}."
        )
    yuv, height, width = _luma_band(image)
    ll, details = pywt.dwt2(yuv[:height, :width, 0], "haar")
    _embed_max_dct()(_bits(mark), wmLen=BITS, scales=[SCALE, 0, 0]).encode_frame(ll, SCALE)
    yuv[:height, :width, 0] = pywt.idwt2((ll, details), "haar")
    rgb = cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB)
    return Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8), mode="RGB")


def detect(image: Image.Image) -> str | None:
    """The watermark id in ``image``, or None when there is none that passes the check (or the
    image is too small to hold one)."""
    import pywt

    if not fits(*image.size):
        return None
    yuv, height, width = _luma_band(image)
    ll, _ = pywt.dwt2(yuv[:height, :width, 0], "haar")
    reader = _embed_max_dct()(watermarks=[], wmLen=BITS, scales=[SCALE, 0, 0])
    scores = reader.decode_frame(ll, SCALE, [[] for _ in range(BITS)])
    bits = np.array([np.mean(s) for s in scores]) > 0.5
    found = np.packbits(bits.astype(np.uint8)).tobytes()
    ident, check = found[:ID_BYTES], found[ID_BYTES:]
    if binascii.crc_hqx(ident, CRC_INIT).to_bytes(2, "big") != check:
        return None
    return ident.hex()
