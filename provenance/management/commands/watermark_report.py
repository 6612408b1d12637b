"""``manage.py watermark_report [--images 50] [--size 512] [--folder DIR]``: the watermark's
detection rate after JPEG re-encoding, resizing and cropping, by kind of picture and by size; how
often a picture that was never marked reads as marked; and what provenance costs per image
(watermark, signing, verification). The README's figures come from its default run.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from django.core.management.base import BaseCommand, CommandError, CommandParser
from PIL import Image

from provenance.engine import content_credentials, measure, watermark
from provenance.engine.certificates import development_chain
from provenance.engine.manifest import TRAINED_ALGORITHMIC_MEDIA

ROBUSTNESS = list(measure.CONDITIONS)
SIZES = (256, 384, 768, 1024)
SIZE_CONDITIONS = ["as stored (PNG)", "JPEG q90", "resized to 75%, back to full size"]


class Command(BaseCommand):
    help = "Measure the invisible watermark's limits and provenance's cost per image."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--images", type=int, default=50, help="pictures per row (≥ 50)")
        parser.add_argument("--size", type=int, default=512, help="side of the pictures")
        parser.add_argument("--folder", type=Path, help="also measure the images in a folder")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--quick", action="store_true", help="skip the sizes table")

    def handle(self, *args: Any, **options: Any) -> None:
        count, size, seed = options["images"], options["size"], options["seed"]
        if count < 1 or size < 256:
            raise CommandError("--images must be ≥ 1 and --size ≥ 256.")
        rows: list[measure.Rate] = []
        for n, family in enumerate(measure.FAMILIES):
            images = measure.synthetic(family, count=count, size=size, seed=seed + n)
            rows += measure.detection_rates(
                images, family=family, conditions=ROBUSTNESS, seed=seed + n
            )
        if options["folder"]:
            images = measure.folder_images(options["folder"], limit=count)
            if not images:
                raise CommandError(
                    f"No PNG/JPEG/WebP of at least 256×256 under {options['folder']}."
                )
            rows += measure.detection_rates(
                images, family=f"folder {options['folder']}", conditions=ROBUSTNESS, seed=seed
            )
        self._table(f"Detection rate, {size}×{size} pictures", rows)
        if not options["quick"]:
            by_size: list[measure.Rate] = []
            for side in SIZES:
                images = measure.synthetic("photo", count=count, size=side, seed=seed + side)
                by_size += measure.detection_rates(
                    images, family="photo", conditions=SIZE_CONDITIONS, seed=seed + side
                )
            self._table("Detection rate by size (photo-like pictures)", by_size)
        unmarked = [
            image
            for n, family in enumerate(measure.FAMILIES)
            for image in measure.synthetic(family, count=count, size=size, seed=seed + 100 + n)
        ]
        read, total = measure.false_positives(unmarked)
        self.stdout.write(f"\nUnmarked pictures read as marked: {read} of {total}\n")
        self._costs(size=size, seed=seed, repeat=max(count, 20))

    def _table(self, title: str, rows: list[measure.Rate]) -> None:
        self.stdout.write(f"\n{title}\n")
        self.stdout.write(
            f"{'pictures':<10} {'size':<10} {'after':<36} {'found':>13} {'wrong id':>9}\n"
        )
        for r in rows:
            self.stdout.write(
                f"{r.family:<10} {r.size:<10} {r.condition:<36} "
                f"{r.found:>4}/{r.total:<4} {r.percent:>3.0f}% {r.wrong:>9}\n"
            )

    def _costs(self, *, size: int, seed: int, repeat: int) -> None:
        image = measure.photo(np.random.default_rng(seed), size)
        png = _encoded(image, "PNG")
        thumb = image.copy()
        thumb.thumbnail((256, 256))
        webp = _encoded(thumb, "WEBP", quality=80)
        chain = development_chain()
        signer = content_credentials.make_signer(chain_pem=chain.chain_pem, key_pem=chain.key_pem)
        anchors = chain.root_pem.decode()
        mark = "0123456789ab"
        marked = watermark.embed(image, mark)

        def signed(data: bytes, mime_type: str) -> bytes:
            return content_credentials.sign(
                data, mime_type=mime_type, definition=_definition(mime_type), signer=signer
            )

        signed_png = signed(png, "image/png")

        def embed() -> None:
            watermark.embed(image, mark)

        def detect() -> None:
            watermark.detect(marked)

        def sign_png() -> int:
            return len(signed(png, "image/png")) - len(png)

        def sign_webp() -> int:
            return len(signed(webp, "image/webp")) - len(webp)

        def verify() -> None:
            content_credentials.read(signed_png, mime_type="image/png", trust_anchors_pem=anchors)

        def encode() -> None:
            _encoded(image, "PNG")

        costs = [
            measure.timed("embed the watermark", embed, repeat=repeat),
            measure.timed("read the watermark", detect, repeat=repeat),
            measure.timed("sign the PNG (C2PA, ES256)", sign_png, repeat=repeat),
            measure.timed("sign the WebP thumbnail", sign_webp, repeat=repeat),
            measure.timed("verify the signed PNG", verify, repeat=repeat),
            measure.timed("encode the PNG (for scale)", encode, repeat=repeat),
        ]
        self.stdout.write(
            f"\nCost per image ({size}×{size} PNG of {len(png):,} bytes, WebP thumbnail of "
            f"{len(webp):,} bytes; {repeat} runs)\n"
        )
        for c in costs:
            added = "" if c.added_bytes is None else f"  +{c.added_bytes:,} bytes"
            self.stdout.write(
                f"{c.what:<30} median {c.median_ms:7.1f} ms  p90 {c.p90_ms:7.1f} ms{added}\n"
            )


def _encoded(image: Image.Image, image_format: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def _definition(mime_type: str) -> dict[str, Any]:
    created = {"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA}
    return {
        "claim_generator_info": [{"name": "Easel", "version": "watermark_report"}],
        "title": "report",
        "format": mime_type,
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [created]}}],
    }
