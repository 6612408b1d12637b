"""Teach the built-in `shapes` model a product it never saw with DreamBooth-LoRA, then measure
what changed with classifiers that know nothing of the trainer.

The shapes model draws apples, boxes and bottles in six colours from captions like "a red apple
on a white background". Two products it never saw, each drawn here as six instance shots in its
studio look (white backdrop with a light fall-off, light from the top left, a soft floor shadow;
supersampled, varied size and position):

- `magenta-bottle` (default): a bottle in magenta (hue 311°; the palette's nearest hues are
  purple 279° and red 0°), rendered by `shapes_data` itself. Instance prompt "a sks bottle on a
  white background", class prompt "a red bottle on a white background".
- `cyan-star`: a cyan (hue 182°) five-pointed star, varied rotation too. Instance prompt "a sks
  star on a white background", class prompt "a box on a white background". The shapes VAE
  cannot draw it: encoded and decoded, every shot comes back as a blue (~225°) rounded pentagon
  (solidity ~0.9), so no UNet training can reach it — the "VAE ceiling" row says so.

The rare token: the shapes tokenizer is CLIP's full BPE (models_registry/engine/tokenizer.py),
where "sks" is one token (id 48136) and "star" another (1565); neither occurs in a shapes
caption, so their embeddings were never trained. In "a sks bottle" the token sits where the
captions put the colour.

Measures, per guidance scale, over `--eval-seeds` seeds (20 DDIM steps as in the model's
easel.json), on the foreground (saturated pixels, `shapes_report.foreground_mask`):

(a) instance prompt with the adapter: share of images in the product's colour (most foreground
    hues within 25° of it) and shape (bottle: `shapes_report.classify_shape`; star: largest
    blob's solidity = area / convex-hull area below 0.72 — the star shots measure 0.52-0.58,
    boxes 0.96-0.99, apples 0.79-0.92, bottles ~0.9); the base model on the same prompt and the
    instance shots after a VAE round trip (the ceiling) for comparison;
(b) class prompt with the adapter: share of seeds whose image gets the same shape, colour and
    background labels (`shapes_report` classifiers) as the base model's image for that seed;
(c) the base model with the adapter switched off (`use_adapter(pipe, lora_path=None, ...)`):
    pixel-identical to the render made before training, for both prompts.

    DJANGO_SETTINGS_MODULE=config.settings.local PYTHONPATH=. .venv/bin/python \\
        scripts/dreambooth_shapes_demo.py --threads 1 [--product cyan-star] [--model DIR]

Without `--model` the folder comes from `models_registry.builtin.shapes_pipeline_dir()` (built
first if the cache lacks it). Instance shots, a before/after contact sheet and the adapter go to
`--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from models_registry.engine import shapes_data  # noqa: E402
from models_registry.engine.shapes_report import (  # noqa: E402
    classify_background,
    classify_colour,
    classify_shape,
    foreground_mask,
)

HUE_TOLERANCE = 25.0
STAR_MAX_SOLIDITY = 0.72
SUPERSAMPLE = 4


# --- instance shots -----------------------------------------------------------------------------


def render_stars(count: int, seed: int, size: int, rgb: tuple[int, int, int]) -> list[np.ndarray]:
    """Stars standing on the floor of a white studio set, each (size, size, 3) uint8."""
    rng = np.random.default_rng(seed)
    res = size * SUPERSAMPLE
    y = ((np.arange(res) + 0.5) / res)[:, None]
    x = ((np.arange(res) + 0.5) / res)[None, :]
    backdrop = np.array(shapes_data.BACKGROUNDS["white"], dtype=np.float32) / 255.0
    shots = []
    for _ in range(count):
        canvas = backdrop * (1.03 - 0.08 * y)[..., None] * np.ones((res, res, 1), np.float32)
        radius = rng.uniform(0.26, 0.36)
        centre_x = rng.uniform(0.38, 0.62)
        ground = rng.uniform(0.78, 0.9)
        centre_y = ground - 0.81 * radius  # the two lower points touch the floor
        rotation = rng.uniform(-0.2, 0.2)
        shadow = np.exp(
            -(((x - centre_x - 0.25 * radius) / (1.1 * radius)) ** 2 + ((y - ground) / 0.035) ** 2)
        )
        canvas = canvas * (1.0 - 0.45 * shadow)[..., None]
        # A regular pentagram: outer and inner corners alternate, inner radius 0.382 × outer.
        angles = rotation - np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, radius, 0.382 * radius)
        corners = [
            (float((centre_x + r * np.cos(a)) * res), float((centre_y + r * np.sin(a)) * res))
            for r, a in zip(radii, angles, strict=True)
        ]
        silhouette = Image.new("L", (res, res), 0)
        ImageDraw.Draw(silhouette).polygon(corners, fill=255)
        inside = np.asarray(silhouette) > 127
        # Lit from the top left: brightness falls off towards the bottom right, the hue stays.
        shade = np.clip(1.05 - 0.175 * ((x - centre_x) + (y - centre_y)) / radius, 0.7, 1.15)
        surface = np.array(rgb, dtype=np.float32) / 255.0 * shade[..., None]
        canvas = np.where(inside[..., None], surface, canvas)
        canvas = canvas.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean(axis=(1, 3))
        shots.append(np.clip(np.rint(canvas * 255.0), 0, 255).astype(np.uint8))
    return shots


@contextmanager
def palette_slot(name: str, rgb: tuple[int, int, int]):  # type: ignore[no-untyped-def]
    """Let `shapes_data` draw in a colour it does not have, in place of `name`, for a moment."""
    saved = shapes_data.COLOURS[name]
    shapes_data.COLOURS[name] = rgb
    try:
        yield
    finally:
        shapes_data.COLOURS[name] = saved


def render_bottles(count: int, seed: int, size: int, rgb: tuple[int, int, int]) -> list[np.ndarray]:
    with palette_slot("purple", rgb):
        shots = shapes_data.render_shots(
            ["purple"] * count, ["bottle"] * count, ["white"] * count, seed=seed, size=size
        )
    return list(shots)


# --- the measure --------------------------------------------------------------------------------


def hues(pixels: np.ndarray) -> np.ndarray:
    """Hue in degrees of (N, 3) RGB values."""
    rgb = pixels.astype(np.float32)
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    high, chroma = rgb.max(axis=1), rgb.max(axis=1) - rgb.min(axis=1)
    safe = np.where(chroma == 0, 1.0, chroma)
    sector = np.where(
        high == r,
        ((g - b) / safe) % 6.0,
        np.where(high == g, (b - r) / safe + 2, (r - g) / safe + 4),
    )
    return sector * 60.0


def has_hue(image: np.ndarray, hue: float) -> bool:
    """Most foreground pixels lie within HUE_TOLERANCE of `hue`."""
    mask = foreground_mask(image)
    if mask.sum() < 4:
        return False
    distance = np.abs(hues(image[mask]) - hue)
    return bool(np.mean(np.minimum(distance, 360.0 - distance) <= HUE_TOLERANCE) > 0.5)


def largest_blob(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected component of a boolean mask."""
    labels = np.zeros(mask.shape, dtype=np.int32)
    best_label, best_size = 0, 0
    for start in zip(*np.nonzero(mask), strict=True):
        if labels[start]:
            continue
        label = int(labels.max()) + 1
        labels[start] = label
        stack, size = [start], 0
        while stack:
            y, x = stack.pop()
            size += 1
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                inside = 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1]
                if inside and mask[ny, nx] and not labels[ny, nx]:
                    labels[ny, nx] = label
                    stack.append((ny, nx))
        if size > best_size:
            best_label, best_size = label, size
    return labels == best_label if best_label else np.zeros_like(mask)


def convex_hull_area(points: list[tuple[int, int]]) -> float:
    """Area of the convex hull of integer points (Andrew's monotone chain, then the shoelace)."""
    ordered = sorted(set(points))

    def turn(o: tuple[int, int], a: tuple[int, int], b: tuple[int, int]) -> int:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[int, int]] = []
    upper: list[tuple[int, int]] = []
    for point in ordered:
        while len(lower) >= 2 and turn(lower[-2], lower[-1], point) <= 0:
            lower.pop()
        lower.append(point)
    for point in reversed(ordered):
        while len(upper) >= 2 and turn(upper[-2], upper[-1], point) <= 0:
            upper.pop()
        upper.append(point)
    hull = lower[:-1] + upper[:-1]
    twice = sum(
        hull[i][0] * hull[(i + 1) % len(hull)][1] - hull[(i + 1) % len(hull)][0] * hull[i][1]
        for i in range(len(hull))
    )
    return abs(twice) / 2.0


def solidity(image: np.ndarray) -> float:
    """Foreground blob area / its convex hull's area (pixel squares, so a box scores ~1)."""
    blob = largest_blob(foreground_mask(image))
    if blob.sum() < 4:
        return float("nan")
    rows, cols = np.nonzero(blob)
    corners = [
        (c + dx, r + dy) for r, c in zip(rows, cols, strict=True) for dx in (0, 1) for dy in (0, 1)
    ]
    return float(blob.sum() / convex_hull_area(corners))


def is_star(image: np.ndarray) -> bool:
    return bool(solidity(image) < STAR_MAX_SOLIDITY)  # NaN (no foreground) is not a star


def is_bottle(image: np.ndarray) -> bool:
    return classify_shape(image) == "bottle"


def labels(image: np.ndarray) -> tuple[str | None, str | None, str]:
    return classify_shape(image), classify_colour(image), classify_background(image)


@dataclass(frozen=True)
class Product:
    render: Callable[[int, int, int, tuple[int, int, int]], list[np.ndarray]]
    rgb: tuple[int, int, int]
    hue: float
    colour_name: str
    shape_name: str
    has_shape: Callable[[np.ndarray], bool]
    instance_prompt: str
    class_prompt: str


PRODUCTS = {
    "magenta-bottle": Product(
        render_bottles,
        (215, 45, 185),
        315.0,
        "magenta",
        "bottle",
        is_bottle,
        "a sks bottle on a white background",
        "a red bottle on a white background",
    ),
    "cyan-star": Product(
        render_stars,
        (35, 195, 200),
        180.0,
        "cyan",
        "star",
        is_star,
        "a sks star on a white background",
        "a box on a white background",
    ),
}


# --- sampling -----------------------------------------------------------------------------------


def render(pipe: Any, prompt: str, seeds: list[int], steps: int, guidance: float, size: int):  # type: ignore[no-untyped-def]
    import torch

    images = pipe(
        prompt=[prompt] * len(seeds),
        generator=[torch.Generator("cpu").manual_seed(seed) for seed in seeds],
        num_inference_steps=steps,
        guidance_scale=guidance,
        height=size,
        width=size,
        output_type="np",
    ).images
    return np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8)


def vae_round_trip(model_dir: Path, shots: list[np.ndarray]) -> np.ndarray:
    """The shots encoded and decoded by the model's VAE: the most any UNet training can reach."""
    import torch
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(model_dir / "vae")
    pixels = torch.from_numpy(np.stack(shots)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    with torch.no_grad():
        decoded = vae.decode(vae.encode(pixels).latent_dist.mean).sample
    return decoded.clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).numpy()


def contact_sheet(rows: dict[str, np.ndarray], path: Path, scale: int = 3) -> None:
    tile = rows[next(iter(rows))].shape[1] * scale
    width = 230 + max(len(images) for images in rows.values()) * (tile + 2)
    sheet = Image.new("RGB", (width, len(rows) * (tile + 4)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for r, (label, images) in enumerate(rows.items()):
        top = r * (tile + 4)
        draw.text((4, top + tile // 2 - 6), label, fill=(0, 0, 0))
        for c, image in enumerate(images):
            big = Image.fromarray(image).resize((tile, tile), Image.Resampling.NEAREST)
            sheet.paste(big, (230 + c * (tile + 2), top))
    sheet.save(path)


def share(flags: list[bool]) -> str:
    return f"{sum(flags):>2}/{len(flags)} {sum(flags) / len(flags):>4.0%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--product", choices=sorted(PRODUCTS), default="magenta-bottle")
    parser.add_argument("--model", type=Path, help="shapes pipeline folder (default: the cache)")
    parser.add_argument("--out", type=Path, default=Path("var/dreambooth-shapes-demo"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--class-images", type=int, default=48)
    parser.add_argument("--class-guidance", type=float, default=1.5)
    parser.add_argument("--text-encoder", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--guidance", type=float, nargs="+", default=[2.0, 5.0])
    parser.add_argument("--eval-seeds", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()

    import torch

    torch.set_num_threads(args.threads)
    if args.model is None:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
        import django

        django.setup()
        from models_registry.builtin import shapes_pipeline_dir

        args.model = shapes_pipeline_dir()
    from diffusers import StableDiffusionPipeline

    from generation.engine.adapters import use_adapter
    from training.engine.dreambooth import DreamBoothConfig, train_dreambooth

    product = PRODUCTS[args.product]
    defaults = json.loads((args.model / "easel.json").read_text(encoding="utf-8"))
    steps, size = int(defaults["steps"]), int(defaults["native_size"])
    prompts = (product.instance_prompt, product.class_prompt)
    seeds = list(range(1000, 1000 + args.eval_seeds))
    out = args.out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)

    shots = product.render(6, args.seed, size, product.rgb)
    for index, shot in enumerate(shots):
        Image.fromarray(shot).save(out / f"instance-{index}.png")
    ceiling = vae_round_trip(args.model, shots)

    pipe = StableDiffusionPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    before = {
        (p, g): render(pipe, p, seeds, steps, g, size) for p in prompts for g in args.guidance
    }

    config = DreamBoothConfig(
        instance_prompt=product.instance_prompt,
        class_prompt=product.class_prompt,
        resolution=size,
        max_steps=args.steps,
        learning_rate=args.lr,
        lr_scheduler="cosine",
        lr_warmup_steps=args.steps // 20,
        rank=args.rank,
        train_text_encoder=args.text_encoder,
        batch_size=args.batch,
        seed=args.seed,
        with_prior_preservation=True,
        num_class_images=args.class_images,
        validation_every=max(1, args.steps // 2),
        validation_seeds=(1000, 1001),
        sample_steps=steps,
        guidance_scale=args.guidance[0],
        class_guidance_scale=args.class_guidance,
    )

    def report(progress: Any) -> None:
        if progress.step % 100 == 0 or progress.step == progress.total:
            print(
                f"  step {progress.step}/{progress.total}  loss {progress.loss:.4f}  "
                f"lr {progress.lr:.1e}  {progress.seconds:.0f} s"
            )

    result = train_dreambooth(
        base_model_dir=args.model,
        instance_images=[Image.fromarray(shot) for shot in shots],
        config=config,
        output_dir=out / "job",
        class_cache_dir=out / "class-images",
        on_progress=report,
    )

    use_adapter(pipe, lora_path=result.output_path, adapter_name="product")
    adapted = {key: render(pipe, key[0], seeds, steps, key[1], size) for key in before}
    use_adapter(pipe, lora_path=None, adapter_name=None)
    after = {key: render(pipe, key[0], seeds, steps, key[1], size) for key in before}

    print(
        f"\nDreamBooth-LoRA, {args.product}, on {args.model.name}: {args.steps} steps, "
        f"lr {args.lr:g} (cosine), rank {args.rank}, batch {args.batch} instance + "
        f"{args.batch} class images, text-encoder LoRA {'on' if args.text_encoder else 'off'}, "
        f"{args.class_images} class images at guidance {args.class_guidance:g}, "
        f"{args.threads} thread(s)"
    )
    print(f"training job (class images, training, 2 validations, save): {result.seconds:.0f} s\n")
    colour, shape = product.colour_name, product.shape_name
    print(f"{'':44}" + "".join(f"{'guidance ' + format(g, 'g'):>14}" for g in args.guidance))

    def row(label: str, flags_for: Callable[[float], list[bool]]) -> None:
        print(f"{label:44}" + "".join(f"{share(flags_for(g)):>14}" for g in args.guidance))

    instance, klass = product.instance_prompt, product.class_prompt
    row(
        f"(a) adapter, instance prompt: {colour}",
        lambda g: [has_hue(i, product.hue) for i in adapted[instance, g]],
    )
    row(
        f"(a) adapter, instance prompt: {shape}",
        lambda g: [product.has_shape(i) for i in adapted[instance, g]],
    )
    row(
        f"(a) adapter, instance prompt: {colour} {shape}",
        lambda g: [has_hue(i, product.hue) and product.has_shape(i) for i in adapted[instance, g]],
    )
    row(
        f"    base, instance prompt: {colour} {shape}",
        lambda g: [has_hue(i, product.hue) and product.has_shape(i) for i in before[instance, g]],
    )
    vae_flags = [has_hue(i, product.hue) and product.has_shape(i) for i in ceiling]
    print(f"{'    VAE ceiling (shots round-tripped)':44}{share(vae_flags):>14}")
    row(
        "(b) adapter, class prompt: labels = base's",
        lambda g: [
            labels(a) == labels(b) for a, b in zip(adapted[klass, g], before[klass, g], strict=True)
        ],
    )
    row(
        f"(b) adapter, class prompt: {colour}",
        lambda g: [has_hue(i, product.hue) for i in adapted[klass, g]],
    )
    for prompt in prompts:
        same = all(np.array_equal(after[prompt, g], before[prompt, g]) for g in args.guidance)
        print(f"(c) adapter off, {prompt!r}: pixel-identical to before training: {same}")
    base_labels = [labels(i) for i in before[klass, args.guidance[-1]]]
    print(
        f"\nbase on the class prompt (guidance {args.guidance[-1]:g}), (shape, colour, "
        f"background) per seed: {sorted(set(base_labels), key=str)}"
    )
    print(
        f"solidity: instance shots {np.mean([solidity(s) for s in shots]):.2f}, after the "
        f"VAE {np.nanmean([solidity(i) for i in ceiling]):.2f}"
    )

    sheet = out / "contact-sheet.png"
    g = args.guidance[0]
    contact_sheet(
        {
            "instance shots": np.stack(shots),
            "shots after the VAE": ceiling,
            f"base, instance prompt, cfg {g:g}": before[instance, g],
            f"adapter, instance prompt, cfg {g:g}": adapted[instance, g],
            f"base, class prompt, cfg {g:g}": before[klass, g],
            f"adapter, class prompt, cfg {g:g}": adapted[klass, g],
        },
        sheet,
    )
    print(f"contact sheet: {sheet}; adapter: {result.output_path}")
    print(f"whole script: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
