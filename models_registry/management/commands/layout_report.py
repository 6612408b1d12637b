"""``manage.py layout_report``: how well the grounded ``shapes-gligen`` model follows a layout
(`models_registry.engine.layout_report`), on its cached build (trained first if the cache lacks
it) or on ``--model-dir``, and how far img2img strays from its source at a low and a high
strength; ``--sheet`` writes the contact sheet (``docs/shapes-gligen.png``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Measure where the grounded shapes model puts the product for each box of a layout."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model-dir", type=Path, help="A grounded pipeline folder.")
        parser.add_argument("--seeds", type=int, default=4, help="Seeds per prompt and box.")
        parser.add_argument("--sheet", type=Path, help="Write a contact sheet here.")

    def handle(self, *args: Any, **options: Any) -> None:
        import torch
        from diffusers import StableDiffusionPipeline

        from models_registry.builtin import build_cache_root
        from models_registry.engine.build_cache import cached_build
        from models_registry.engine.gligen import ShapesGligenConfig
        from models_registry.engine.layout_report import (
            evaluate_layout,
            layout_sheet,
            strength_distances,
        )

        folder = options["model_dir"] or cached_build(ShapesGligenConfig(), build_cache_root())
        torch.set_num_threads(2)
        pipe = StableDiffusionPipeline.from_pretrained(folder)
        pipe.set_progress_bar_config(disable=True)
        report = evaluate_layout(pipe, seeds=range(options["seeds"]))
        self.stdout.write(f"Layout report of {folder}:")
        for line in report.lines():
            self.stdout.write(line)
        self.stdout.write("img2img of a green bottle shot, mean distance from it (of 255):")
        for (prompt, strength), distance in strength_distances(pipe).items():
            self.stdout.write(f"  {prompt!r:<40} strength {strength:g}: {distance:.1f}")
        if options["sheet"]:
            self.stdout.write(f"Contact sheet: {layout_sheet(pipe, options['sheet'])}")
