"""Trial an autoencoder recipe for the `shapes` model and judge its reconstructions.

The `shapes` model cannot draw a shape its VAE cannot reconstruct, so a recipe is measured here,
in minutes, before a full build: train a VAE on synthetic shots (as `shapes_train._train_vae`
does, plus the options under trial), then classify its reconstructions of fresh shots with the
report's classifiers. The figures in ARCHITECTURE.md ("Built-in shapes model") come from:

    PYTHONPATH=. python scripts/shapes_vae_trial.py                        # today's VAE, 32×32
    PYTHONPATH=. python scripts/shapes_vae_trial.py --silhouette 4 --silhouette-from 0.5
    PYTHONPATH=. python scripts/shapes_vae_trial.py --size 64 --channels 16 32 64 64 \\
        --steps 1200 --batch 8 --lr 2e-3 --product-weight 60 --silhouette 4 --silhouette-from 0.5

Options that win move into `ShapesConfig` and `_train_vae`; this script is not part of a build.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from diffusers import AutoencoderKL  # noqa: E402
from diffusers.optimization import get_cosine_schedule_with_warmup  # noqa: E402

from models_registry.engine.shapes_data import (  # noqa: E402
    BACKGROUND_NAMES,
    COLOUR_NAMES,
    SHAPES,
    make_shapes_dataset,
    render_shots,
)
from models_registry.engine.shapes_report import judge_images  # noqa: E402
from models_registry.engine.shapes_train import (  # noqa: E402
    VAE_LOGVAR_BIAS,
    VAE_NORM_GROUPS,
    deterministic_cpu,
)


def _chroma(images: torch.Tensor) -> torch.Tensor:
    return images.amax(dim=1, keepdim=True) - images.amin(dim=1, keepdim=True)


def train(args: argparse.Namespace) -> AutoencoderKL:
    torch.manual_seed(args.seed + 1)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(args.channels),
        up_block_types=("UpDecoderBlock2D",) * len(args.channels),
        block_out_channels=tuple(args.channels),
        layers_per_block=1,
        latent_channels=args.latent_channels,
        norm_num_groups=VAE_NORM_GROUPS,
        sample_size=args.size,
        mid_block_add_attention=True,
    )
    with torch.no_grad():
        vae.encoder.conv_out.bias[args.latent_channels :].fill_(VAE_LOGVAR_BIAS)
    data = make_shapes_dataset(4096, seed=args.seed, size=args.size)
    images = torch.from_numpy(data.images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    weights = 1.0 + (args.product_weight - 1.0) * (_chroma(images) > 0.25).float()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=args.lr, weight_decay=0.0, foreach=True)
    schedule = get_cosine_schedule_with_warmup(optimizer, max(1, args.steps // 20), args.steps)
    generator = torch.Generator().manual_seed(args.seed)
    vae.train()
    for step in range(1, args.steps + 1):
        index = torch.randint(0, len(images), (args.batch,), generator=generator)
        batch, weight = images[index], weights[index]
        posterior = vae.encode(batch).latent_dist
        reconstruction = vae.decode(posterior.sample(generator=generator)).sample
        error = reconstruction - batch
        loss = (
            (weight * error.square()).mean() / weight.mean()
            + 0.5 * (weight * error.abs()).mean() / weight.mean()
            + 1e-7 * posterior.kl().mean()
        )
        if args.silhouette:
            # Colour first: the term that shapes the outline ramps in after `silhouette_from`.
            late = (step / args.steps - args.silhouette_from) / (1 - args.silhouette_from)
            ramp = min(1.0, max(0.0, late))
            outline = (_chroma(reconstruction) - _chroma(batch)).abs().mean()
            loss = loss + args.silhouette * ramp * outline
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    vae.eval()
    return vae


@torch.no_grad()
def judge(vae: AutoencoderKL, size: int) -> None:
    asked = [
        (colour, shape, background, index)
        for colour in COLOUR_NAMES
        for shape in SHAPES
        for background in BACKGROUND_NAMES
        for index in range(4)
    ]
    colours, shapes, backgrounds = ([a[i] for a in asked] for i in range(3))
    shots = render_shots(colours, shapes, backgrounds, seed=5, size=size)
    images = torch.from_numpy(shots).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    decoded = vae.decode(vae.encode(images).latent_dist.mean).sample
    pixels = decoded.clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).numpy()
    report = judge_images(pixels, asked)
    print("reconstructions of fresh shots:", report.summary())
    confusions = Counter((v.shape, v.predicted_shape) for v in report.verdicts)
    print("shape asked → seen:", dict(confusions))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--channels", type=int, nargs="+", default=[32, 64, 64])
    parser.add_argument("--latent-channels", type=int, default=4)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--product-weight", type=float, default=30.0)
    parser.add_argument("--silhouette", type=float, default=0.0, help="weight; 0 turns it off")
    parser.add_argument("--silhouette-from", type=float, default=0.5, help="share of the steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with deterministic_cpu(2):
        started = time.perf_counter()
        vae = train(args)
        print(f"trained in {time.perf_counter() - started:.0f} s")
        judge(vae, args.size)


if __name__ == "__main__":
    main()
