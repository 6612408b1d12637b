"""Category switching: LoRA hot-swap on a warm base against reloading the pipeline per job.

    .venv/bin/python bench/adapter_switch.py [--jobs 48] [--categories 8] [--steps 10]

Eight categories, each a LoRA version on one base (the bench's mid-size UNet, see
``generation_throughput.build_bench_pipeline``; random adapters of rank 8 on its attention
projections). A mixed workload of ``--jobs`` single-image jobs, categories in a seeded random
order, is run three ways in one process, one after another:

- **reload per job**: ``StableDiffusionPipeline.from_pretrained`` + ``load_lora_weights`` for each
  job, as a worker without a pipeline cache would;
- **hot-swap, arrival order**: one warm base, ``generation.engine.adapters.use_adapter`` per job
  (each adapter loaded once, then activated), jobs in the order they came;
- **hot-swap, grouped by version**: the same, jobs taken grouped by model version (what the
  worker's model-affinity dequeue does with a backlog).

It prints the time per switch (the model step of a job without its denoising) and images/s of each,
and their ratios. Not part of ``make test``; figures go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _generate(pipe, steps: int, seed: int) -> None:  # type: ignore[no-untyped-def]
    import torch

    pipe(
        "a red apple on a white background",
        num_inference_steps=steps,
        guidance_scale=5.0,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
    )


def reload_per_job(base: Path, loras: list[Path], order: list[int], steps: int):  # type: ignore[no-untyped-def]
    from diffusers import StableDiffusionPipeline

    switches, started = [], time.perf_counter()
    for index, category in enumerate(order):
        t0 = time.perf_counter()
        pipe = StableDiffusionPipeline.from_pretrained(base, safety_checker=None)
        pipe.set_progress_bar_config(disable=True)
        pipe.load_lora_weights(loras[category], adapter_name=f"c{category}")
        switches.append(time.perf_counter() - t0)
        _generate(pipe, steps, index)
    return switches, time.perf_counter() - started


def hot_swap(base: Path, loras: list[Path], order: list[int], steps: int):  # type: ignore[no-untyped-def]
    from diffusers import StableDiffusionPipeline

    from generation.engine.adapters import use_adapter

    pipe = StableDiffusionPipeline.from_pretrained(base, safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    for category in sorted(set(order)):  # every adapter loaded once (a warm worker)
        use_adapter(pipe, lora_path=loras[category], adapter_name=f"c{category}")
    _generate(pipe, steps, 0)
    switches, changes, started, active = [], 0, time.perf_counter(), None
    for index, category in enumerate(order):
        t0 = time.perf_counter()
        use_adapter(pipe, lora_path=loras[category], adapter_name=f"c{category}")
        if category != active:
            switches.append(time.perf_counter() - t0)
            changes += 1
        active = category
        _generate(pipe, steps, index)
    return switches, time.perf_counter() - started, changes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=48)
    parser.add_argument("--categories", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--channels", default="32,64,128", help="base UNet block_out_channels")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from bench.generation_throughput import build_bench_pipeline
    from models_registry.engine.tiny import make_random_lora

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="easel-switch-") as tmp:
        root = Path(tmp)
        channels = tuple(int(c) for c in args.channels.split(","))
        base = build_bench_pipeline(root / "base", channels=channels, layers=1)
        loras = [
            make_random_lora(base, root / f"lora-{i}", seed=i, rank=args.rank).parent
            for i in range(args.categories)
        ]
        order = [i % args.categories for i in range(args.jobs)]
        random.Random(0).shuffle(order)
        grouped = sorted(order)

        reload_switch, reload_total = reload_per_job(base, loras, order, args.steps)
        swap_switch, swap_total, swap_changes = hot_swap(base, loras, order, args.steps)
        group_switch, group_total, group_changes = hot_swap(base, loras, grouped, args.steps)

    n = args.jobs
    reload_ms = statistics.median(reload_switch) * 1000
    swap_ms = statistics.median(swap_switch) * 1000
    print(
        f"{n} jobs over {args.categories} LoRA categories (rank {args.rank}), base UNet "
        f"{channels}, {args.steps} steps, 64×64, torch threads {args.threads}"
    )
    print("| policy | model switches | time per switch (median) | images/s |")
    print("|---|---|---|---|")
    print(f"| reload per job | {n} | {reload_ms:.1f} ms | {n / reload_total:.2f} |")
    print(f"| hot-swap, arrival order | {swap_changes} | {swap_ms:.2f} ms | {n / swap_total:.2f} |")
    group_ms = statistics.median(group_switch) * 1000 if group_switch else 0.0
    print(
        f"| hot-swap, grouped by version | {group_changes} | {group_ms:.2f} ms "
        f"| {n / group_total:.2f} |"
    )
    print(f"switch: reload / hot-swap = {reload_ms / swap_ms:.0f}×")
    print(
        f"images/s: hot-swap / reload = {reload_total / swap_total:.2f}×, "
        f"grouped / arrival order = {swap_total / group_total:.2f}×"
    )


if __name__ == "__main__":
    main()
