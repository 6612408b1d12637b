"""``manage.py build_tiny_model``: build the random-weight tiny pipeline offline (or reuse the
cached build) and register it as the ``tiny`` base model."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from models_registry.builtin import build_tiny_model, tiny_pipeline_dir


class Command(BaseCommand):
    help = "Build the tiny built-in pipeline offline and register it as base model 'tiny'."

    def handle(self, *args: Any, **options: Any) -> None:
        base = build_tiny_model()
        self.stdout.write(
            self.style.SUCCESS(
                f"Base model 'tiny' is ready: {base.size_bytes} bytes, sha256 {base.sha256[:16]}…, "
                f"built in {tiny_pipeline_dir()}"
            )
        )
