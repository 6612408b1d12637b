"""``manage.py build_shapes_model``: train (or reuse the cached) ``shapes`` pipeline offline and
register it, printing progress; ``--background`` queues it on the ``train`` queue instead.

``--report`` then asks the build for every colour × shape × background, and for the demo
templates' prompts, with the report seeds; it prints how often the images show what was asked
(totals, per colour, per shape, per prompt set) and writes the contact sheet. ``--readme`` also
rewrites the README's table between its markers. What is judged lives in
``engine.shapes_report``; this command only drives it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from models_registry import services, shapes_readme
from models_registry.builtin import (
    SHAPES,
    build_cache_root,
    build_shapes_model,
    shapes_config,
    shapes_pipeline_dir,
)

# The demo templates' placeholders, and the report label each one receives.
_LABEL_VARIABLES = {"color": "colour", "product": "shape", "background": "background"}


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


def _demo_template_prompts() -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """The demo templates' prompts for every colour × shape × background they can ask, rendered
    by the renderer a generation request goes through; and the templates that were skipped.

    generation sits above this app: it is imported here, in the report path of a command, so
    that nothing the registry serves or builds depends on it.
    """
    from generation.demo import DEMO_TEMPLATES
    from generation.models import PromptTemplate
    from generation.templates import render_template, template_variables
    from models_registry.engine.shapes_report import labelled_prompts

    def renderer(template: PromptTemplate, names: list[str]) -> Callable[[str, str, str], str]:
        def render(colour: str, shape: str, background: str) -> str:
            labels = {"colour": colour, "shape": shape, "background": background}
            return render_template(template, {n: labels[_LABEL_VARIABLES[n]] for n in names}).prompt

        return render

    prompts: dict[tuple[str, str, str, str], None] = {}
    skipped = []
    for spec in DEMO_TEMPLATES:
        template = PromptTemplate(**spec)  # unsaved: rendered as the saved one is
        names = template_variables(template.text)
        if set(names) <= set(_LABEL_VARIABLES):
            prompts.update(dict.fromkeys(labelled_prompts(renderer(template, names))))
        else:
            skipped.append(template.application)
    return list(prompts), skipped


class Command(BaseCommand):
    help = (
        "Train the built-in 'shapes' model (a few minutes on CPU, cached) and register it; "
        "--report judges how well it follows prompts."
    )

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
        parser.add_argument(
            "--seed",
            type=int,
            help="Build seed (same as --set seed=N): confirm the report on another build.",
        )
        parser.add_argument(
            "--no-register",
            action="store_true",
            help="Build (or reuse) without registering it: the served 'shapes' model stays.",
        )
        parser.add_argument(
            "--report",
            action="store_true",
            help="Then judge every colour × shape × background and the demo templates' prompts "
            "(4 seeds each, 168 images: ~20 s on two free cores), print the figures and write "
            "the contact sheet.",
        )
        parser.add_argument(
            "--contact-sheet",
            type=Path,
            metavar="PATH",
            help="Where --report writes the contact sheet (default: docs/shapes-model.png, for "
            "the default build only).",
        )
        parser.add_argument(
            "--readme",
            action="store_true",
            help="With --report (implied): write this build seed's row of the README's table.",
        )
        parser.add_argument(
            "--readme-path",
            type=Path,
            metavar="PATH",
            help="The README --readme rewrites (default: README.md of the project).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        overrides = _parse_overrides(options["overrides"])
        if options["seed"] is not None:
            if overrides.get("seed", options["seed"]) != options["seed"]:
                raise CommandError("--seed and --set seed= disagree; give the build seed once.")
            overrides["seed"] = options["seed"]
        report = options["report"] or options["readme"]
        readme = self._readme_path(options, overrides) if options["readme"] else None
        if options["background"]:
            if report:
                raise CommandError("--report runs in the foreground; drop --background.")
            from models_registry.tasks import build_builtin_model_task

            services.base_model_mark_building(name=SHAPES, family="tiny")
            build_builtin_model_task.delay(SHAPES, overrides or None)
            self.stdout.write("Queued the shapes build; follow it at /api/v1/base-models/shapes.")
            return

        def echo(stage: str, step: int, total: int, metrics: dict[str, float]) -> None:
            shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
            self.stdout.write(f"  {stage:>7} {step}/{total} {shown}")

        try:
            if options["no_register"]:
                folder = shapes_pipeline_dir(overrides=overrides, echo=echo)
                self.stdout.write(self.style.SUCCESS(f"The shapes build is ready in {folder}."))
            else:
                base = build_shapes_model(overrides=overrides, echo=echo)
                folder = shapes_pipeline_dir(overrides=overrides)  # the cached build just made
                seconds = (base.build_progress or {}).get("build_seconds")
                took = f" (trained in {seconds:.0f}s)" if isinstance(seconds, int | float) else ""
                self.stdout.write(
                    self.style.SUCCESS(
                        f"Base model 'shapes' is ready{took}: sha256 {base.sha256[:16]}…"
                    )
                )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if report:
            self._report(folder, overrides, options["contact_sheet"], readme)

    def _readme_path(self, options: dict[str, Any], overrides: dict[str, Any]) -> Path:
        """The README to rewrite, checked before a build and a report spend minutes."""
        if set(overrides) - {"seed"}:
            raise CommandError(
                "--readme records the default recipe, one row per build seed; it cannot take "
                f"--set {', '.join(sorted(set(overrides) - {'seed'}))}. Drop --readme or --set."
            )
        path = options["readme_path"] or Path(settings.BASE_DIR) / "README.md"
        if not path.is_file():
            raise CommandError(f"--readme: {path} is not a file; give --readme-path PATH.")
        text = path.read_text(encoding="utf-8")
        if shapes_readme.BEGIN not in text or shapes_readme.END not in text:
            raise CommandError(
                f"{path} has no {shapes_readme.BEGIN} … {shapes_readme.END} block; put the two "
                "markers, each on its own line, where the prompt-following table goes."
            )
        return path

    def _report(
        self,
        folder: Path,
        overrides: dict[str, Any],
        sheet: Path | None,
        readme: Path | None,
    ) -> None:
        from models_registry.engine.shapes_report import (
            CAPTIONS,
            contact_sheet,
            evaluate_shapes_pipeline,
        )

        demo_prompts, skipped = _demo_template_prompts()
        for application in skipped:
            self.stdout.write(
                f"  not judged: demo template {application!r} has placeholders other than "
                f"{', '.join(_LABEL_VARIABLES)}"
            )
        extra = {shapes_readme.DEMO_TEMPLATES_SET: demo_prompts} if demo_prompts else {}
        self.stdout.write("Generating the report images…")
        report = evaluate_shapes_pipeline(folder, extra_prompts=extra)
        self.stdout.write(report.summary())

        default_build = shapes_config(overrides) == shapes_config()
        if sheet is None and default_build:
            sheet = Path(settings.BASE_DIR) / "docs" / "shapes-model.png"
        if sheet is None:
            self.stdout.write(
                "No contact sheet: docs/shapes-model.png shows the default build; "
                "give --contact-sheet PATH for this one."
            )
        else:
            contact_sheet(report.subset(CAPTIONS), sheet)
            self.stdout.write(f"Contact sheet: {sheet}")
        if readme is not None:
            self._write_readme(readme, folder, overrides, report.to_dict())

    def _write_readme(
        self, path: Path, folder: Path, overrides: dict[str, Any], figures: dict[str, Any]
    ) -> None:
        from models_registry.engine.build_cache import cached_build_path
        from models_registry.engine.shapes_train import read_build_info

        seed = shapes_config(overrides).seed
        root = build_cache_root()

        def folder_for_seed(other: int) -> str:
            return cached_build_path(shapes_config({"seed": other}), root).name

        row = shapes_readme.report_row(
            figures,
            seed=seed,
            default_seed=shapes_config().seed,
            build_seconds=float(read_build_info(folder)["build_seconds"]),
            folder=folder.name,
        )
        text, dropped = shapes_readme.readme_with_row(
            path.read_text(encoding="utf-8"),
            seed=seed,
            row=row,
            intro_text=shapes_readme.intro(figures),
            folder_for_seed=folder_for_seed,
        )
        path.write_text(text, encoding="utf-8")
        self.stdout.write(f"README: wrote the row of build seed {seed} in {path}.")
        for other in dropped:
            self.stdout.write(
                f"  dropped the row of build seed {other}: another recipe made it "
                f"(rerun with --seed {other} --readme to measure today's)."
            )
