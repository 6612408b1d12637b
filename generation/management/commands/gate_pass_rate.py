"""How often the quality gate passes the built-in ``shapes`` model's images, on the first attempt
and after the refine-and-retry loop, with the gate's defaults and the demo template's rubric.

    manage.py gate_pass_rate [--seeds 4] [--attempts 3] [--template product-shot] [--readme]

Every colour × product × background of the model, each with ``--seeds`` fixed seeds, is rendered
through the demo template (``generation.demo``) and judged as the worker judges a job: the
default defect checks, the safety detector and the template's rubric, through the same
``quality.gate_for``, ``quality.answer``, ``verdict_of`` and ``refine_by_rules`` (the VLM question
is not judged, as in an organization that has not turned the VLM on). A failing image is refined
and made again, up to ``--attempts``. As controls, a noise image, a blank backdrop and the render
with its colours rotated are judged for every prompt: the gate must fail them. ``--readme``
writes the figures into the README between ``<!-- gate-pass-rate:begin/end -->``.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

BEGIN = "<!-- gate-pass-rate:begin -->"
END = "<!-- gate-pass-rate:end -->"


class Command(BaseCommand):
    help = "Measure the quality gate's pass rate on the shapes model, before and after the loop."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seeds", type=int, default=4, help="Seeds per prompt (default 4).")
        parser.add_argument("--attempts", type=int, default=3, help="Attempts (default 3).")
        parser.add_argument("--template", default="product-shot", help="Demo template to use.")
        parser.add_argument("--readme", action="store_true", help="Record the figures in README.")
        parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2).")

    def handle(self, *args: Any, **options: Any) -> None:
        import torch
        from diffusers import StableDiffusionPipeline

        from generation.demo import DEMO_TEMPLATES
        from generation.engine.quality.judges import JudgedImage
        from generation.engine.quality.refine import refine_by_rules
        from generation.models import PromptTemplate
        from generation.protocol import MAX_CFG_SCALE
        from generation.quality import answer, gate_for, verdict_of
        from generation.rubrics import DEFAULT_PASS_THRESHOLD, rubric_clean
        from generation.templates import render_template, template_variables
        from models_registry.builtin import shapes_pipeline_dir
        from models_registry.engine.shapes_data import BACKGROUND_NAMES, COLOUR_NAMES, SHAPES

        spec = next((t for t in DEMO_TEMPLATES if t["application"] == options["template"]), None)
        if spec is None:
            names = ", ".join(t["application"] for t in DEMO_TEMPLATES)
            raise CommandError(f"No demo template '{options['template']}'; use one of: {names}.")
        variables_of = template_variables(spec["text"])
        template = PromptTemplate(
            application=spec["application"],
            version=1,
            text=spec["text"],
            few_shot_examples=spec.get("few_shot_examples", []),
            rubric=rubric_clean(spec["rubric"], variables=frozenset(variables_of)),
            pass_threshold=spec.get("pass_threshold", DEFAULT_PASS_THRESHOLD),
        )
        torch.set_num_threads(options["threads"])
        folder = shapes_pipeline_dir(echo=self.stdout.write)
        pipe = StableDiffusionPipeline.from_pretrained(folder)
        pipe.set_progress_bar_config(disable=True)
        defaults = json.loads((Path(folder) / "easel.json").read_text())
        size, steps = int(defaults["native_size"]), int(defaults["steps"])
        cfg0 = float(defaults["cfg"])

        cases = []
        for colour in COLOUR_NAMES:
            for product in SHAPES:
                for background in BACKGROUND_NAMES:
                    values = {"color": colour, "product": product, "background": background}
                    values = {k: v for k, v in values.items() if k in variables_of}
                    rendered = render_template(template, values)
                    # As the worker asks a job of the template (no category, optional judges off).
                    gate = gate_for(template=template, variables=values)
                    for seed in range(options["seeds"]):
                        cases.append(
                            {
                                "colour": colour,
                                "background": background,
                                "prompt": rendered.prompt,
                                "negative": rendered.negative_prompt,
                                "cfg": cfg0,
                                "seed": seed,
                                "gate": gate,
                                "passed_at": None,
                            }
                        )

        def judge(images: list[np.ndarray], group: list[dict]) -> list[Any]:
            """Each image on its own (the images of different prompts are not one job)."""
            results = []
            for image, case in zip(images, group, strict=True):
                gate = case["gate"]
                judged = JudgedImage(
                    pixels=image, png=b"", prompt=case["prompt"], expected_size=(size, size)
                )
                (found,) = answer(gate, [judged], judges=gate.inline_judges)
                results.append(verdict_of(gate, found))
            return results

        def render(group: list[dict]) -> list[np.ndarray]:
            out = []
            for start in range(0, len(group), 72):
                chunk = group[start : start + 72]
                with torch.inference_mode():
                    result = pipe(
                        prompt=[c["prompt"] for c in chunk],
                        negative_prompt=[c["negative"] for c in chunk]
                        if any(c["negative"] for c in chunk)
                        else None,
                        generator=[torch.Generator().manual_seed(c["seed"]) for c in chunk],
                        num_inference_steps=steps,
                        guidance_scale=chunk[0]["cfg"],
                        height=size,
                        width=size,
                        output_type="np",
                    )
                out += list(np.clip(np.rint(result.images * 255.0), 0, 255).astype(np.uint8))
            return out

        started = time.perf_counter()
        failures: dict[str, int] = {}
        controls = {"noise": 0, "blank": 0, "wrong colour": 0}
        for attempt in range(1, options["attempts"] + 1):
            todo = [c for c in cases if c["passed_at"] is None]
            if not todo:
                break
            # One guidance per pipeline call: group by it (attempts raise it the same way).
            images: list[np.ndarray] = []
            order: list[dict] = []
            for cfg in sorted({c["cfg"] for c in todo}):
                group = [c for c in todo if c["cfg"] == cfg]
                images += render(group)
                order += group
            for image, case, v in zip(images, order, judge(images, order), strict=True):
                if attempt == 1:
                    self._controls(image, case, judge, controls)
                if v.passed:
                    case["passed_at"] = attempt
                    continue
                for q, _ in v.failed:
                    name = q.check or q.key
                    failures[name] = failures.get(name, 0) + 1
                if attempt < options["attempts"]:
                    r = refine_by_rules(
                        prompt=case["prompt"],
                        negative_prompt=case["negative"],
                        cfg_scale=case["cfg"],
                        seed=case["seed"],
                        attempt=attempt,
                        failed=v.failed,
                        max_cfg_scale=MAX_CFG_SCALE,
                    )
                    case.update(
                        prompt=r.prompt, negative=r.negative_prompt, cfg=r.cfg_scale, seed=r.seed
                    )
        seconds = time.perf_counter() - started

        total = len(cases)
        first = sum(1 for c in cases if c["passed_at"] == 1) / total
        after = sum(1 for c in cases if c["passed_at"] is not None) / total
        lines = [
            f"template '{spec['application']}' ({spec['text']}), {total} images "
            f"({len(COLOUR_NAMES)} colours × {len(SHAPES)} products × {len(BACKGROUND_NAMES)} "
            f"backgrounds × {options['seeds']} seeds), {options['attempts']} attempts, "
            f"{seconds:.0f} s",
            f"passed on the first attempt: {first:.1%}",
            f"passed within {options['attempts']} attempts: {after:.1%}",
            "controls passed (must be 0%): "
            + ", ".join(f"{k} {v / total:.0%}" for k, v in controls.items()),
            "failed questions, over every attempt: "
            + (
                ", ".join(f"{k} {v}" for k, v in sorted(failures.items(), key=lambda kv: -kv[1]))
                or "none"
            ),
        ]
        for line in lines:
            self.stdout.write(line)
        if options["readme"]:
            self._readme(first, after, controls, total, options, seconds, spec["application"])

    def _controls(self, image: np.ndarray, case: dict, judge: Any, controls: dict) -> None:
        """Judge, for one prompt, images the gate must refuse (``engine.quality.defects``)."""
        from generation.engine.quality.defects import empty_backdrop, hue_rotated, random_noise

        made = {
            "noise": random_noise(image, case["seed"]),
            "blank": empty_backdrop(image),
            "wrong colour": hue_rotated(image, 180),
        }
        verdicts = judge(list(made.values()), [case] * len(made))
        for name, v in zip(made, verdicts, strict=True):
            controls[name] += int(v.passed)

    def _readme(
        self,
        first: float,
        after: float,
        controls: dict,
        total: int,
        options: dict,
        seconds: float,
        application: str,
    ) -> None:
        path = Path(settings.BASE_DIR) / "README.md"
        text = path.read_text(encoding="utf-8")
        if BEGIN not in text or END not in text:
            raise CommandError(f"README.md has no {BEGIN} … {END} block to write into.")
        table = "\n".join(
            [
                "| template | images | first attempt | within "
                f"{options['attempts']} attempts | noise / blank / wrong colour passed | time |",
                "|---|---|---|---|---|---|",
                f"| `{application}` | {total} | {first:.1%} | {after:.1%} | "
                + " / ".join(f"{v / total:.0%}" for v in controls.values())
                + f" | {seconds:.0f} s |",
            ]
        )
        new = re.sub(
            re.escape(BEGIN) + r".*?" + re.escape(END),
            f"{BEGIN}\n{table}\n{END}",
            text,
            flags=re.DOTALL,
        )
        path.write_text(new, encoding="utf-8")
        self.stdout.write(f"wrote the table into {path}")
