"""``manage.py build_shapes_model``: train (or reuse the cached) ``shapes`` pipeline offline and
register it, printing progress; ``--background`` queues it on the ``train`` queue instead."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from models_registry import services
from models_registry.builtin import SHAPES, build_shapes_model


def _parse_overrides(pairs: list[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise CommandError(f"--set takes KEY=VALUE, not {pair!r}.")
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    return overrides


class Command(BaseCommand):
    help = "Train the built-in 'shapes' model (a few minutes on CPU, cached) and register it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--background", action="store_true", help="Queue the build on the train queue."
        )
        parser.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="Override a ShapesConfig field, e.g. --set unet_steps=200 (changes the build).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        overrides = _parse_overrides(options["overrides"])
        if options["background"]:
            from models_registry.tasks import build_builtin_model_task

            services.base_model_mark_building(name=SHAPES, family="tiny")
            build_builtin_model_task.delay(SHAPES, overrides or None)
            self.stdout.write("Queued the shapes build; follow it at /api/v1/base-models/shapes.")
            return

        def echo(stage: str, step: int, total: int, metrics: dict[str, float]) -> None:
            shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
            self.stdout.write(f"  {stage:>7} {step}/{total} {shown}")

        try:
            base = build_shapes_model(overrides=overrides, echo=echo)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        seconds = (base.build_progress or {}).get("build_seconds")
        took = f" (trained in {seconds:.0f}s)" if isinstance(seconds, int | float) else ""
        self.stdout.write(
            self.style.SUCCESS(f"Base model 'shapes' is ready{took}: sha256 {base.sha256[:16]}…")
        )
