"""The generate form: what a marketer picks and types, turned into a unified-protocol request.

The form only shapes input for people (choices, blanks meaning "use the default"). Validation
is the protocol's own: ``to_request`` builds the same flat body the API accepts, and the view
runs it through ``GenerationRequestSerializer`` and ``generation_job_create`` like the API does.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms

from generation.protocol import (
    ASPECT_RATIOS,
    MAX_CFG_SCALE,
    MAX_FEATHER,
    MAX_IMAGES,
    MAX_STEPS,
    SEED_MAX,
)
from generation.styles import STYLES
from generation.template_selectors import prompt_template_latest_list
from generation.templates import template_variables
from models_registry.selectors import (
    base_model_list,
    category_list_for_org,
    model_version_list_for_org,
)
from tenants.models import Organization

TEMPLATE_STYLE = "__template__"
VARIABLE_PREFIX = "var_"


def target_choices(org: Organization) -> list[tuple[str, Any]]:
    """Grouped choices for "what draws it": the default, categories, versions, base models."""
    default = org.default_model or "none"
    categories = [
        (f"category:{c.slug}", f"{c.name} (production)") for c in category_list_for_org(org=org)
    ]
    versions = [
        (f"model:version:{v.pk}", f"v{v.pk} · {v.category.name} · {v.status}")
        for v in model_version_list_for_org(org=org)[:50]
    ]
    bases = [(f"model:{b.name}", f"{b.name} ({b.family})") for b in base_model_list()]
    choices: list[tuple[str, Any]] = [("", f"Organization default ({default})")]
    for label, group in (("Categories", categories), ("Model versions", versions)):
        if group:
            choices.append((label, group))
    if bases:
        choices.append(("Base models", bases))
    return choices


class GenerateForm(forms.Form):
    target = forms.ChoiceField(label="Model", required=False)
    template = forms.ChoiceField(label="Prompt template", required=False)
    prompt = forms.CharField(
        label="Prompt",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Used when no template is chosen.",
    )
    negative_prompt = forms.CharField(
        label="Negative prompt",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Blank: the template's.",
    )
    style = forms.ChoiceField(label="Style preset", required=False)
    aspect_ratio = forms.ChoiceField(
        label="Aspect ratio",
        required=False,
        choices=[("", "Model's native size")] + [(r, r) for r in ASPECT_RATIOS],
    )
    width = forms.IntegerField(label="Width", required=False, min_value=8, step_size=8)
    height = forms.IntegerField(label="Height", required=False, min_value=8, step_size=8)
    cfg_scale = forms.FloatField(
        label="CFG scale", required=False, min_value=0, max_value=MAX_CFG_SCALE
    )
    steps = forms.IntegerField(label="Steps", required=False, min_value=1, max_value=MAX_STEPS)
    seed = forms.IntegerField(label="Seed", required=False, min_value=0, max_value=SEED_MAX)
    num_images = forms.IntegerField(
        label="Images", required=False, min_value=1, max_value=MAX_IMAGES, initial=1
    )
    # Where things go: JSON [{phrase, box}] written by the box editor drawn over the canvas.
    layout = forms.CharField(required=False, widget=forms.HiddenInput)
    mode = forms.ChoiceField(
        label="Mode",
        required=False,
        choices=[
            ("txt2img", "From text"),
            ("img2img", "Vary an image (img2img)"),
            ("inpaint", "Repaint part of an image (inpaint)"),
        ],
    )
    strength = forms.FloatField(
        label="Strength",
        required=False,
        min_value=0.01,
        max_value=1.0,
        help_text="How far from the source: 0.6 for img2img, 1 for inpaint when blank.",
    )
    source_image = forms.UUIDField(required=False, widget=forms.HiddenInput)
    source_file = forms.FileField(
        label="Source image", required=False, help_text="Or upload one (PNG, JPEG or WebP)."
    )
    mask_file = forms.FileField(
        label="Mask", required=False, help_text="White repaints; or draw it over the source."
    )
    mask_drawn = forms.CharField(required=False, widget=forms.HiddenInput)
    feather = forms.FloatField(
        label="Soft edge (px)", required=False, min_value=0, max_value=MAX_FEATHER
    )

    def __init__(self, *args: Any, org: Organization, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.templates = {t.application: t for t in prompt_template_latest_list(org=org)}
        self.fields["target"].choices = target_choices(org)
        self.fields["template"].choices = [("", "No template (write a prompt)")] + [
            (app, f"{app} (v{t.version})") for app, t in self.templates.items()
        ]
        self.fields["style"].choices = [
            (TEMPLATE_STYLE, "Template's style"),
            ("", "None"),
            *[(name, f"{name} — {preset.description}") for name, preset in STYLES.items()],
        ]
        self.fields["style"].initial = TEMPLATE_STYLE
        for name, value in self._variable_values().items():
            self.fields[f"{VARIABLE_PREFIX}{name}"] = forms.CharField(
                label=name, required=False, initial=value
            )

    def selected_template(self) -> Any:
        source = self.data if self.is_bound else self.initial
        return self.templates.get(source.get("template") or "")

    def _variable_values(self) -> dict[str, str]:
        template = self.selected_template()
        if template is None:
            return {}
        source = self.data if self.is_bound else self.initial
        return {
            name: source.get(f"{VARIABLE_PREFIX}{name}", "")
            for name in template_variables(template.text)
        }

    def variable_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name.startswith(VARIABLE_PREFIX)]

    def to_request(self) -> dict[str, Any]:
        """The protocol body for the cleaned form (only what the person set)."""
        data = self.cleaned_data
        body: dict[str, Any] = {}
        target = data.get("target") or ""
        if target.startswith("category:"):
            body["category"] = target.removeprefix("category:")
        elif target.startswith("model:"):
            body["model"] = target.removeprefix("model:")
        if data.get("template"):
            body["template"] = data["template"]
            body["variables"] = {
                name.removeprefix(VARIABLE_PREFIX): (data.get(name) or "")
                for name in self.fields
                if name.startswith(VARIABLE_PREFIX)
            }
        else:
            body["prompt"] = data.get("prompt") or ""
        if data.get("negative_prompt"):
            body["negative_prompt"] = data["negative_prompt"]
        if data.get("style") != TEMPLATE_STYLE:
            body["style"] = data.get("style") or ""
        for key in ("aspect_ratio", "width", "height", "cfg_scale", "steps", "seed", "num_images"):
            if data.get(key) not in (None, ""):
                body[key] = data[key]
        if data.get("layout"):
            try:
                body["layout"] = json.loads(data["layout"])
            except ValueError:
                body["layout"] = data["layout"]  # the protocol says what is wrong with it
        mode = data.get("mode") or "txt2img"
        if mode != "txt2img":
            body["mode"] = mode
            for key in ("strength", "feather"):
                if data.get(key) is not None and (key != "feather" or mode == "inpaint"):
                    body[key] = data[key]
            if data.get("source_image"):
                body["source_image"] = str(data["source_image"])
        return body


def initial_from_job(job: Any, *, seed: int | None = None) -> dict[str, Any]:
    """Form values that redo ``job`` ("regenerate like this"), optionally from one image's seed."""
    params = job.params or {}
    initial: dict[str, Any] = {}
    if job.category_id and not job.model:
        initial["target"] = f"category:{job.category.slug}"
    elif job.model:
        initial["target"] = f"model:{job.model}"
    application = params.get("template_application")
    if application:
        initial["template"] = application
        for name, value in (params.get("variables") or {}).items():
            initial[f"{VARIABLE_PREFIX}{name}"] = value
    else:
        initial["prompt"] = job.prompt
    initial["style"] = params.get("style", TEMPLATE_STYLE)
    for key in ("width", "height", "cfg_scale", "steps"):
        if params.get(key) is not None:
            initial[key] = params[key]
    initial["seed"] = seed if seed is not None else params.get("seed")
    initial["num_images"] = 1 if seed is not None else params.get("num_images", 1)
    if params.get("layout"):
        initial["layout"] = json.dumps(params["layout"])
    return initial
