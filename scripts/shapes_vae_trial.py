"""Trial an autoencoder recipe for the `shapes` model and judge its reconstructions.

The `shapes` model cannot draw a shape its VAE cannot reconstruct, so a recipe is measured here,
in minutes, before a full build: train a VAE on synthetic shots (as `shapes_train._train_vae`
does, plus the options under trial), then classify its reconstructions of fresh shots with the
report's classifiers. The figures in ARCHITECTURE.md ("Built-in shapes model") come from:

    PYTHONPATH=. python scripts/shapes_vae_trial.py                        # today's VAE, 32×32
    PYTHONPATH=. python scripts/shapes_vae_trial.py --silhouette 4 --silhouette-from 0.5
    PYTHONPATH=. python scripts/shapes_vae_trial.py --size 64 --channels 16 32 64 64 \\
        --steps 1200 --batch 8 --lr 2e-3 --product-weight 60 --silhouette 4 --silhouette-from 0.5

Issue 10's 64×64 trials run on one thread, beside other work (`--eval-every` prints the live
weights' and, with `--ema`, the weight average's figures along the way). With
R="--threads 1 --size 64 --channels 16 32 64 64 --steps 1200 --batch 8 --lr 2e-3
--product-weight 60 --silhouette 4 --silhouette-from 0.5 --eval-every 200 --ema 0.999":

    PYTHONPATH=. python scripts/shapes_vae_trial.py $R                       # the 64×64 recipe
    PYTHONPATH=. python scripts/shapes_vae_trial.py $R --colour-weight 2     # + subject colour L1
    PYTHONPATH=. python scripts/shapes_vae_trial.py $R --train-latent-noise 0.15 \\
        --train-latent-noise-from 0.5                                      # + late latent noise

`--judge BUILD` judges the VAE of a finished build folder instead (its reconstructions' shape,
which the build does not record).

Options that win move into `ShapesConfig` and `_train_vae`; this script is not part of a build.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
from models_registry.engine.shapes_report import (  # noqa: E402
    evaluate_shapes_pipeline,
    judge_images,
)
from models_registry.engine.shapes_train import (  # noqa: E402
    VAE_LOGVAR_BIAS,
    VAE_NORM_GROUPS,
    deterministic_cpu,
)


def _chroma(images: torch.Tensor) -> torch.Tensor:
    return images.amax(dim=1, keepdim=True) - images.amin(dim=1, keepdim=True)


def _subject_colour(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean colour (B, 3) of each image over its mask (B, 1, H, W)."""
    return (images * mask).sum(dim=(2, 3)) / mask.sum(dim=(2, 3)).clamp(min=1.0)


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
        norm_num_groups=args.norm_groups,
        sample_size=args.size,
        mid_block_add_attention=True,
    )
    with torch.no_grad():
        vae.encoder.conv_out.bias[args.latent_channels :].fill_(VAE_LOGVAR_BIAS)
    data = make_shapes_dataset(4096, seed=args.seed, size=args.size)
    images = torch.from_numpy(data.images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    subject = (_chroma(images) > 0.25).float()
    weights = 1.0 + (args.product_weight - 1.0) * subject
    optimizer = torch.optim.AdamW(vae.parameters(), lr=args.lr, weight_decay=0.0, foreach=True)
    schedule = get_cosine_schedule_with_warmup(optimizer, max(1, args.steps // 20), args.steps)
    generator = torch.Generator().manual_seed(args.seed)
    params = list(vae.parameters())
    ema = [p.detach().clone() for p in params] if args.ema else None
    vae.train()
    for step in range(1, args.steps + 1):
        index = torch.randint(0, len(images), (args.batch,), generator=generator)
        batch, weight, mask = images[index], weights[index], subject[index]
        posterior = vae.encode(batch).latent_dist
        latents = posterior.sample(generator=generator)
        noisy = (step / args.steps - args.train_latent_noise_from) / (
            1 - args.train_latent_noise_from
        )
        if args.train_latent_noise and noisy > 0:
            # Noise of a share of the latents' spread (the encoder cannot outgrow it): a
            # smoother latent space for the denoiser, ramped in like the silhouette term.
            noise = torch.randn(latents.shape, generator=generator)
            share = args.train_latent_noise * min(1.0, noisy)
            latents = latents + share * latents.detach().std() * noise
        reconstruction = vae.decode(latents).sample
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
        if args.colour_weight:
            # The subject's mean colour, under the shot's own subject mask: what the report
            # votes on, whatever the outline does.
            drift = _subject_colour(reconstruction, mask) - _subject_colour(batch, mask)
            loss = loss + args.colour_weight * drift.abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if ema is not None:
            decay = min(args.ema, (1 + step) / (10 + step))
            with torch.no_grad():
                torch._foreach_mul_(ema, decay)
                torch._foreach_add_(ema, [p.detach() for p in params], alpha=1.0 - decay)
        if args.eval_every and step % args.eval_every == 0 and step < args.steps:
            vae.eval()
            print(f"step {step}: live {judge(vae, args.size, quiet=True)}", end="")
            if ema is not None:
                with _swapped(params, ema):
                    print(f"; ema {judge(vae, args.size, quiet=True)}", end="")
            print(flush=True)
            vae.train()
    vae.eval()
    if ema is not None:
        print(f"live weights at the end: {judge(vae, args.size, quiet=True)}")
        with torch.no_grad():
            for param, averaged in zip(params, ema, strict=True):
                param.copy_(averaged)
        print("judged below: the weight average")
    return vae


@contextmanager
def _swapped(params: list[torch.Tensor], other: list[torch.Tensor]) -> Iterator[None]:
    """Run with `other`'s values in `params`, then put the live values back."""
    live = [p.detach().clone() for p in params]
    with torch.no_grad():
        for param, value in zip(params, other, strict=True):
            param.copy_(value)
    try:
        yield
    finally:
        with torch.no_grad():
            for param, value in zip(params, live, strict=True):
                param.copy_(value)


@torch.no_grad()
def judge(vae: AutoencoderKL, size: int, *, quiet: bool = False, latent_noise: float = 0.0) -> str:
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
    latents = vae.encode(images).latent_dist.mean
    if latent_noise:
        # How much a slightly wrong latent (as a denoiser draws) costs: noise of this share of
        # the latents' spread.
        noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(11))
        latents = latents + latent_noise * latents.std() * noise
    decoded = vae.decode(latents).sample
    pixels = decoded.clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).numpy()
    report = judge_images(pixels, asked)
    boxes = sum(v.shape == v.predicted_shape == "box" for v in report.verdicts)
    line = (
        f"colour {report.colour_accuracy:.3f}, shape {report.shape_accuracy:.3f} "
        f"(boxes {boxes}/{sum(v.shape == 'box' for v in report.verdicts)})"
    )
    if quiet:
        return line
    print("reconstructions of fresh shots:", report.summary())
    print("in short:", line)
    confusions = Counter((v.shape, v.predicted_shape) for v in report.verdicts)
    print("shape asked → seen:", dict(confusions))
    missed = Counter(
        (v.colour, v.background, v.predicted_colour)
        for v in report.verdicts
        if v.predicted_colour != v.colour
    )
    print("colour missed (asked, backdrop, seen):", dict(missed))
    return line


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
    parser.add_argument("--norm-groups", type=int, default=VAE_NORM_GROUPS)
    parser.add_argument(
        "--train-latent-noise", type=float, default=0.0, help="share of the latents' spread"
    )
    parser.add_argument(
        "--train-latent-noise-from", type=float, default=0.0, help="share of the steps"
    )
    parser.add_argument(
        "--colour-weight", type=float, default=0.0, help="L1 on the subject's mean colour; 0: off"
    )
    parser.add_argument("--ema", type=float, default=0.0, help="judge a weight average; 0: off")
    parser.add_argument("--eval-every", type=int, default=0, help="judge every N steps; 0: off")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--judge", type=Path, metavar="BUILD", help="only judge the VAE of a finished build folder"
    )
    parser.add_argument(
        "--sample",
        type=float,
        nargs=2,
        action="append",
        metavar=("GUIDANCE", "STEPS"),
        help="with --judge, also judge the build's generated captions at these sampling settings",
    )
    parser.add_argument(
        "--latent-noise", type=float, nargs="*", default=[], help="with --judge: shares to try"
    )
    args = parser.parse_args()
    if args.judge:
        with deterministic_cpu(args.threads):
            vae = AutoencoderKL.from_pretrained(args.judge / "vae").eval()
            judge(vae, vae.config.sample_size)
            for share in args.latent_noise:
                line = judge(vae, vae.config.sample_size, quiet=True, latent_noise=share)
                print(f"latent noise {share} of the latents' spread: {line}")
        for guidance, steps in args.sample or []:
            report = evaluate_shapes_pipeline(
                args.judge,
                guidance_scale=guidance,
                num_inference_steps=int(steps),
                num_threads=args.threads,
            )
            boxes = report.shape_accuracy_by_shape["box"]
            print(f"generated, guidance {guidance}, {int(steps)} steps:", report.summary())
            print(f"  in short: boxes {boxes:.2f}")
        return
    with deterministic_cpu(args.threads):
        started = time.perf_counter()
        vae = train(args)
        print(f"trained in {time.perf_counter() - started:.0f} s")
        judge(vae, args.size)


if __name__ == "__main__":
    main()
