"""``manage.py register_model``: check a real checkpoint, upload it to the artifact store and
register it.

    # a base model: a diffusers-format pipeline folder (or an S3 prefix holding one)
    manage.py register_model --family sd15 --name sd15 --path /models/stable-diffusion-v1-5
    manage.py register_model --family sdxl --name sdxl --uri s3://bucket/models/sdxl-base/

    # a LoRA version of a category, on a registered base
    manage.py register_model --kind lora --base sd15 --org acme --category produce \\
        --path produce.safetensors --label "produce v3"

The folder is checked first (model_index.json, the family's pipeline class, every component
with its config and weights); a bad one is refused with what is missing. Then, unless
``--no-load-check``, diffusers actually loads it on CPU (or parses the LoRA state dict).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.text import slugify

from models_registry import services
from models_registry.artifacts import ArtifactError, download_s3_prefix
from models_registry.models import BaseModel, Family, VersionKind
from models_registry.validation import check_lora_file, check_pipeline_folder
from tenants.models import Organization


def _errors(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
    return "; ".join(exc.messages)


def _load_check_pipeline(path: Path) -> None:
    import torch
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(str(path), dtype=torch.float32)
    del pipe


def _load_check_lora(path: Path) -> None:
    from diffusers import StableDiffusionPipeline

    state = StableDiffusionPipeline.lora_state_dict(str(path.parent), weight_name=path.name)
    if not state or not state[0]:
        raise CommandError(f"{path} holds no LoRA weights diffusers can read.")


class Command(BaseCommand):
    help = "Check, upload and register a diffusers pipeline (base model) or a LoRA (version)."

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--path", type=Path, help="Pipeline folder or LoRA .safetensors.")
        source.add_argument("--uri", help="s3://bucket/prefix holding a pipeline folder.")
        parser.add_argument("--kind", choices=VersionKind.values, default=None)
        parser.add_argument("--family", choices=Family.values, help="Base family (base models).")
        parser.add_argument("--name", help="Base model name (default: the folder's name).")
        parser.add_argument("--description", default="")
        parser.add_argument("--base", help="Registered base model a version builds on.")
        parser.add_argument("--org", help="Organization slug (versions).")
        parser.add_argument("--category", help="Category slug in --org (versions).")
        parser.add_argument("--label", default="")
        parser.add_argument("--no-load-check", action="store_true", help="Skip the diffusers load.")

    def handle(self, *args: Any, **options: Any) -> None:
        with tempfile.TemporaryDirectory(prefix="easel-register-") as tmp:
            source = options["path"]
            if options["uri"]:
                self.stdout.write(f"Downloading {options['uri']} …")
                try:
                    source = download_s3_prefix(options["uri"], Path(tmp))
                except ArtifactError as exc:
                    raise CommandError(str(exc)) from None
            try:
                if options["base"] or options["kind"] == VersionKind.LORA:
                    self._register_version(Path(source), options)
                else:
                    self._register_base(Path(source), options)
            except ValidationError as exc:
                raise CommandError(_errors(exc)) from None

    def _register_base(self, source: Path, options: dict[str, Any]) -> None:
        family = options["family"]
        if not family:
            raise CommandError("--family is required for a base model (tiny, sd15 or sdxl).")
        if options["kind"] not in (None, VersionKind.FULL):
            raise CommandError("A base model is a full pipeline; drop --kind or use --kind full.")
        name = options["name"] or slugify(source.name)
        check_pipeline_folder(source, family=family)
        if not options["no_load_check"]:
            self.stdout.write(f"Loading {source} with diffusers to check it …")
            _load_check_pipeline(source)
        base = services.base_model_register(
            name=name,
            family=family,
            source_path=source,
            default_params=_family_defaults(family, source),
            description=options["description"],
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Registered base model '{base.name}' ({base.family}): {base.size_bytes} bytes, "
                f"sha256 {base.sha256}"
            )
        )

    def _register_version(self, source: Path, options: dict[str, Any]) -> None:
        missing = [f"--{n}" for n in ("base", "org", "category") if not options[n]]
        if missing:
            raise CommandError(f"A model version needs {', '.join(missing)}.")
        base = BaseModel.objects.filter(name=options["base"]).first()
        if base is None:
            raise CommandError(f"No base model '{options['base']}'; register it first.")
        org = Organization.objects.filter(slug=options["org"]).first()
        category = org.categories.filter(slug=options["category"]).first() if org else None
        if category is None:
            raise CommandError(
                f"No category '{options['category']}' in organization '{options['org']}'."
            )
        kind = options["kind"] or VersionKind.LORA
        if kind == VersionKind.LORA:
            weights = check_lora_file(source)
            if not options["no_load_check"]:
                _load_check_lora(weights)
        else:
            check_pipeline_folder(source, family=base.family)
            if not options["no_load_check"]:
                _load_check_pipeline(source)
        version = services.model_version_register(
            actor=None,
            category=category,
            base=base,
            kind=kind,
            source_path=source,
            label=options["label"],
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Registered model version {version.pk} ({kind}) of '{category.slug}' on "
                f"'{base.name}': sha256 {version.sha256}. Promote it with "
                f"POST /api/v1/categories/{category.slug}/promote."
            )
        )


def _family_defaults(family: str, source: Path) -> dict[str, Any]:
    """Sampling defaults: the folder's easel.json if it has one, else the family's usual ones."""
    import json

    manifest = source / "easel.json"
    if manifest.is_file():
        return json.loads(manifest.read_text())
    return {
        Family.SD15: {"family": "sd15", "native_size": 512, "steps": 30, "cfg": 7.5},
        Family.SDXL: {"family": "sdxl", "native_size": 1024, "steps": 30, "cfg": 6.0},
        Family.TINY: {"family": "tiny", "native_size": 64, "steps": 4, "cfg": 5.0},
    }[family]
