"""The unified parameter protocol: one validated schema for every model Easel serves.

A request names *what* to draw (``prompt``, or ``template`` + ``variables``), *with what*
(``model`` — a base-model name, ``version:<id>`` or a configured provider — or ``category``, whose
production alias is used; neither means the organization's default model) and *how*
(``style``, size, ``cfg_scale``, ``steps``, ``seed``, ``num_images``, ``scheduler``). Callers switch
models by changing only ``model``; ``generation.backends`` translates the resolved parameters for
the local diffusers pipeline or a hosted provider.

Validation runs in two steps. ``GenerationRequestSerializer`` checks the body on its own (types,
global bounds, exclusive pairs), so a malformed request is refused before anything is looked up.
``resolve_params`` then knows the model's family and applies the family's bounds and the
precedence *request > template defaults > style preset > base model defaults > protocol
defaults*, chooses and records a seed when none was given, renders the template and applies the
style. Every error names its field.
"""

from __future__ import annotations

import math
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.http import Http404
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from tenants.api.base import StrictSerializer

from .styles import (
    STYLE_NAMES,
    StylePreset,
    UnknownStyle,
    apply_style,
    apply_style_negative,
    get_style,
)

SEED_MAX = 2**32 - 1
MAX_PROMPT_CHARS = 2000
MAX_NEGATIVE_PROMPT_CHARS = 1000
MAX_RENDERED_PROMPT_CHARS = 4000
MAX_VARIABLES = 50
MAX_VARIABLE_CHARS = 500
MIN_SIDE = 32
MAX_SIDE = 1536
MAX_STEPS = 100
MAX_CFG_SCALE = 20.0
MAX_IMAGES = 8
MAX_LAYOUT_BOXES = 8
MAX_PHRASE_CHARS = 80
MIN_BOX_SIDE = 0.02  # of the frame: a box thinner than this cannot hold a product
MODES = ("txt2img", "img2img", "inpaint")
DEFAULT_STRENGTH = {"img2img": 0.6, "inpaint": 1.0}
MAX_FEATHER = 64

# What a prompt may not carry: control characters other than the tab and line breaks a prompt is
# folded from (an ESC sequence repaints the terminal a log is read in), and the bidirectional
# overrides and isolates that make text display other than it reads ("Trojan Source").
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def control_characters(text: str) -> list[str]:
    """The forbidden characters in ``text`` as ``U+XXXX``, each once, in order of appearance."""
    found = [
        c
        for c in text
        if c in _BIDI_CONTROLS or (c not in "\t\n\r" and unicodedata.category(c) == "Cc")
    ]
    return [f"U+{ord(c):04X}" for c in dict.fromkeys(found)]


def _refuse_control_characters(text: str, what: str) -> None:
    found = control_characters(text)
    if found:
        raise serializers.ValidationError(
            f"{what} contains control characters ({', '.join(found)}); remove them."
        )


# Protocol scheduler name → diffusers scheduler class.
SCHEDULERS: Mapping[str, str] = {
    "ddim": "DDIMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpmpp_2m": "DPMSolverMultistepScheduler",
    "pndm": "PNDMScheduler",
    "lms": "LMSDiscreteScheduler",
}
ASPECT_RATIOS: tuple[str, ...] = ("1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3")
PROTOCOL_DEFAULTS: Mapping[str, Any] = {
    "cfg_scale": 7.0,
    "steps": 30,
    "num_images": 1,
    "scheduler": "ddim",
}
# The sampling parameters a request, a template's defaults or a style may set.
PARAM_KEYS = (
    "width",
    "height",
    "aspect_ratio",
    "cfg_scale",
    "steps",
    "seed",
    "num_images",
    "scheduler",
    "layout",
)


@dataclass(frozen=True)
class FamilyLimits:
    """Size bounds (each side, multiples of 8), native square side and step ceiling."""

    min_side: int
    max_side: int
    native_side: int
    max_steps: int = MAX_STEPS


FAMILY_LIMITS: Mapping[str, FamilyLimits] = {
    "tiny": FamilyLimits(min_side=32, max_side=256, native_side=64),
    "sd15": FamilyLimits(min_side=256, max_side=1024, native_side=512),
    "sdxl": FamilyLimits(min_side=512, max_side=1536, native_side=1024),
    # Hosted models: the adapter maps the size onto what the provider offers.
    "provider": FamilyLimits(min_side=256, max_side=1536, native_side=1024),
}


def scheduler_class_name(name: str) -> str:
    """The diffusers scheduler class for a protocol scheduler name (``"euler_a"`` →
    ``"EulerAncestralDiscreteScheduler"``)."""
    try:
        return SCHEDULERS[name]
    except KeyError:
        raise ValueError(
            f"Unknown scheduler '{name}'; use one of: {', '.join(SCHEDULERS)}."
        ) from None


def family_limits(family: str) -> FamilyLimits:
    try:
        return FAMILY_LIMITS[family]
    except KeyError:
        raise ValueError(f"Unknown model family '{family}'.") from None


def size_for_aspect_ratio(aspect_ratio: str, *, native_area: int, family: str) -> tuple[int, int]:
    """Width and height for ``aspect_ratio`` with about ``native_area`` pixels, multiples of 8,
    clamped to the family's bounds."""
    limits = family_limits(family)
    w_part, _, h_part = aspect_ratio.partition(":")
    ratio = int(w_part) / int(h_part)

    def snap(side: float) -> int:
        side8 = max(8, round(side / 8) * 8)
        return min(max(side8, limits.min_side), limits.max_side)

    return snap(math.sqrt(native_area * ratio)), snap(math.sqrt(native_area / ratio))


# --- The resolved parameters -------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationParams:
    """Fully resolved parameters of one generation: what a job records and a backend receives."""

    prompt: str
    negative_prompt: str
    style: str
    width: int
    height: int
    cfg_scale: float
    steps: int
    seed: int
    num_images: int
    scheduler: str
    family: str
    model: str | None = None  # as requested: base-model name, "version:<id>" or provider name
    category: str | None = None
    base_model: str | None = None  # what served it: base-model or provider name
    template_id: int | None = None
    template_application: str | None = None
    template_version: int | None = None
    variables: dict[str, str] = field(default_factory=dict)
    seed_chosen: bool = False  # True when the request named no seed and one was drawn
    # Grounding: [{"phrase", "box": [x0, y0, x1, y1]}] relative to the frame (GLIGEN models).
    layout: list[dict[str, Any]] = field(default_factory=list)
    # Variations: the mode, how far from the source (strength), the source and mask as
    # {"kind": "image" | "upload", "id", "storage_key", "sha256", "width", "height"}, and the
    # soft edge (pixels) an inpainted region is blended over.
    mode: str = "txt2img"
    strength: float | None = None
    source: dict[str, Any] | None = None
    mask: dict[str, Any] | None = None
    feather: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenerationParams:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def image_seeds(self) -> list[int]:
        """Image *i* of the batch is drawn with ``seed + i`` (mod 2**32)."""
        return [(self.seed + i) % (SEED_MAX + 1) for i in range(self.num_images)]

    @property
    def scheduler_class(self) -> str:
        return scheduler_class_name(self.scheduler)


# --- Request validation ------------------------------------------------------------------------


class StrictIntegerField(serializers.IntegerField):
    """An integer that refuses booleans (``true`` is not 1 here)."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    """A finite number that refuses booleans."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


def _multiple_of_8(value: int) -> None:
    if value % 8:
        lower, upper = value // 8 * 8, value // 8 * 8 + 8
        raise serializers.ValidationError(
            f"Must be a multiple of 8 (the latent grid); use {lower} or {upper}."
        )


class LayoutItemSchema(serializers.Serializer):
    """The OpenAPI shape of one layout item (validation is `LayoutField`'s)."""

    phrase = serializers.CharField(max_length=MAX_PHRASE_CHARS)
    box = serializers.ListField(child=serializers.FloatField(), min_length=4, max_length=4)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        value = float(value)
    except OverflowError:  # an integer too large for a float
        return None
    return value if math.isfinite(value) else None


def layout_clean(value: Any) -> list[dict[str, Any]]:
    """A layout, normalized; ``ValueError`` naming the box and what is wrong with it."""
    if not isinstance(value, list | tuple):
        raise ValueError("Must be a list of {phrase, box} objects.")
    if len(value) > MAX_LAYOUT_BOXES:
        raise ValueError(f"At most {MAX_LAYOUT_BOXES} boxes, not {len(value)}.")
    items = []
    for number, item in enumerate(value, start=1):
        where = f"Box {number}"
        if not isinstance(item, Mapping):
            raise ValueError(f"{where}: must be an object with 'phrase' and 'box'.")
        unknown = sorted(set(item) - {"phrase", "box"})
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}; use phrase, box.")
        phrase = item.get("phrase")
        if not isinstance(phrase, str) or not phrase.strip():
            raise ValueError(f"{where}: the phrase is missing or blank.")
        phrase = " ".join(phrase.split())
        if len(phrase) > MAX_PHRASE_CHARS:
            raise ValueError(f"{where}: the phrase is longer than {MAX_PHRASE_CHARS} characters.")
        found = control_characters(phrase)
        if found:
            raise ValueError(f"{where}: the phrase contains control characters ({found[0]}).")
        box = item.get("box")
        numbers = [_number(v) for v in box] if isinstance(box, list | tuple) else []
        if len(numbers) != 4 or any(v is None for v in numbers):
            raise ValueError(
                f"{where}: box must be four numbers [x0, y0, x1, y1], relative to the frame "
                "(0 = left/top, 1 = right/bottom)."
            )
        x0, y0, x1, y1 = (float(v) for v in numbers)  # type: ignore[arg-type]
        if not all(0.0 <= v <= 1.0 for v in (x0, y0, x1, y1)):
            raise ValueError(f"{where}: box {list(numbers)} leaves the frame; keep each in 0–1.")
        if not x0 < x1 or not y0 < y1:
            raise ValueError(
                f"{where}: box {list(numbers)} needs x0 < x1 and y0 < y1 (left, top, right, "
                "bottom)."
            )
        if x1 - x0 < MIN_BOX_SIDE or y1 - y0 < MIN_BOX_SIDE:
            raise ValueError(f"{where}: box is narrower than {MIN_BOX_SIDE} of the frame.")
        items.append({"phrase": phrase, "box": [round(v, 4) for v in (x0, y0, x1, y1)]})
    return items


@extend_schema_field(LayoutItemSchema(many=True))
class LayoutField(serializers.Field):
    """``layout``: where the prompt's products go (see `layout_clean`)."""

    def to_internal_value(self, data: Any) -> list[dict[str, Any]]:
        try:
            return layout_clean(data)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def to_representation(self, value: Any) -> Any:
        return value


def _side_field(name: str) -> StrictIntegerField:
    return StrictIntegerField(
        required=False,
        min_value=MIN_SIDE,
        max_value=MAX_SIDE,
        validators=[_multiple_of_8],
        help_text=(
            f"Image {name} in pixels, a multiple of 8. Bounds per model family: tiny 32–256, "
            "sd15 256–1024, sdxl 512–1536, provider 256–1536 (mapped to the nearest size the "
            "provider offers). Give width and height together, or aspect_ratio. Default: the "
            "model's native size."
        ),
    )


class ProtocolParamsSerializer(StrictSerializer):
    """The sampling parameters: what a request and a template's ``default_params`` may set."""

    width = _side_field("width")
    height = _side_field("height")
    aspect_ratio = serializers.ChoiceField(
        choices=ASPECT_RATIOS,
        required=False,
        help_text=(
            "Instead of width/height: the shape, at about the model's native pixel area (by "
            "family, unless the model says otherwise: tiny 64², sd15 512², sdxl 1024², provider "
            "1024²), sides rounded to multiples of 8 and kept within the family's bounds."
        ),
    )
    cfg_scale = StrictFloatField(
        required=False,
        min_value=0.0,
        max_value=MAX_CFG_SCALE,
        help_text="Classifier-free guidance scale, 0–20. Default: the model's (else 7).",
    )
    steps = StrictIntegerField(
        required=False,
        min_value=1,
        max_value=MAX_STEPS,
        help_text="Denoising steps, 1–100. Default: the model's (else 30).",
    )
    seed = StrictIntegerField(
        required=False,
        min_value=0,
        max_value=SEED_MAX,
        help_text=(
            "Random seed, 0–4294967295; image i of a batch uses seed + i. When absent a seed is "
            "drawn and recorded on the job, so every image can be reproduced."
        ),
    )
    num_images = StrictIntegerField(
        required=False,
        min_value=1,
        max_value=MAX_IMAGES,
        help_text="How many images to draw, 1–8. Default 1.",
    )
    scheduler = serializers.ChoiceField(
        choices=tuple(SCHEDULERS),
        required=False,
        help_text=(
            "Sampler: ddim, euler, euler_a, dpmpp_2m, pndm or lms. Default: the model's "
            "(else ddim). Hosted providers ignore it."
        ),
    )
    layout = LayoutField(
        required=False,
        help_text=(
            "Where things go: a list of {phrase, box: [x0, y0, x1, y1]}, the box relative to the "
            f"frame (0–1, left/top to right/bottom), at most {MAX_LAYOUT_BOXES} boxes, phrases "
            f"at most {MAX_PHRASE_CHARS} characters. Only GLIGEN models (GET "
            "/api/v1/models: grounded) follow a layout; [] overrides a template's."
        ),
    )

    def collect_errors(self, attrs: dict[str, Any]) -> dict[str, str]:
        errors: dict[str, str] = {}
        has_width, has_height = "width" in attrs, "height" in attrs
        if has_width != has_height:
            missing = "height" if has_width else "width"
            given = "width" if has_width else "height"
            errors[missing] = f"Give {missing} together with {given} (or use aspect_ratio)."
        if "aspect_ratio" in attrs and (has_width or has_height):
            errors["aspect_ratio"] = "Give width and height, or aspect_ratio, not both."
        return errors

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        errors = self.collect_errors(attrs)
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class GenerationRequestSerializer(ProtocolParamsSerializer):
    """A generation request in the unified protocol (flat JSON)."""

    model = serializers.CharField(
        required=False,
        max_length=120,
        help_text=(
            "A base-model name (e.g. 'tiny', 'shapes'), 'version:<id>' for a model version, or "
            "a configured hosted provider's name. Give model or category, not both; neither "
            "means the organization's default model."
        ),
    )
    category = serializers.SlugField(
        required=False,
        max_length=80,
        help_text="A category slug: its production model version is used.",
    )
    prompt = serializers.CharField(
        required=False,
        max_length=MAX_PROMPT_CHARS,
        help_text=f"The prompt, at most {MAX_PROMPT_CHARS} characters. Give prompt or template.",
    )
    template = serializers.SlugField(
        required=False,
        max_length=80,
        help_text="A prompt template's application slug: its latest version is rendered.",
    )
    template_version = StrictIntegerField(
        required=False,
        min_value=1,
        help_text="Pin a template version instead of the latest.",
    )
    variables = serializers.DictField(
        child=serializers.CharField(max_length=MAX_VARIABLE_CHARS, allow_blank=True),
        required=False,
        help_text=(
            "Values for the template's {variables}; every variable must be given and no other. "
            f"At most {MAX_VARIABLES}, each at most {MAX_VARIABLE_CHARS} characters."
        ),
    )
    negative_prompt = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=MAX_NEGATIVE_PROMPT_CHARS,
        help_text=(
            "What to keep out of the image; replaces the template's. Hosted providers without "
            "negative prompts get it folded into the prompt as 'Avoid: …'."
        ),
    )
    style = serializers.ChoiceField(
        choices=STYLE_NAMES,
        required=False,
        allow_blank=True,
        help_text=(
            "A style preset adding lighting, background and framing phrases: "
            f"{', '.join(STYLE_NAMES)}. Replaces the template's style; '' for none."
        ),
    )

    mode = serializers.ChoiceField(
        choices=MODES,
        required=False,
        help_text=(
            "'txt2img' (default); 'img2img' varies a source image; 'inpaint' repaints the "
            "white part of a mask over a source image and keeps the rest."
        ),
    )
    strength = StrictFloatField(
        required=False,
        min_value=0.01,
        max_value=1.0,
        help_text=(
            "img2img/inpaint: how far from the source, 0.01–1 (the share of the steps run). "
            "Default 0.6 for img2img, 1 for inpaint."
        ),
    )
    source_image = serializers.UUIDField(
        required=False,
        help_text="img2img/inpaint: the id of one of this organization's generated images.",
    )
    source_upload = serializers.UUIDField(
        required=False,
        help_text="img2img/inpaint: instead of source_image, an uploaded image "
        "(POST /api/v1/uploads with kind=image).",
    )
    mask_upload = serializers.UUIDField(
        required=False,
        help_text="inpaint: an uploaded mask (kind=mask), white where the image is repainted.",
    )
    feather = StrictFloatField(
        required=False,
        min_value=0.0,
        max_value=MAX_FEATHER,
        help_text="inpaint: the soft edge, in pixels, over which the repainted region blends "
        "in, inside the mask (outside it every pixel is the source's). Default: 1/32 of the "
        "shorter side.",
    )

    def validate_variables(self, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_VARIABLES:
            raise serializers.ValidationError(f"At most {MAX_VARIABLES} variables.")
        bad = sorted(k for k in value if not k.isidentifier() or len(k) > 64)
        if bad:
            raise serializers.ValidationError(
                f"Variable names must be identifiers (letters, digits, _): {', '.join(bad)}."
            )
        for name, text in value.items():
            _refuse_control_characters(text, f"Variable '{name}'")
        return value

    def validate_prompt(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("The prompt is blank.")
        _refuse_control_characters(value, "The prompt")
        return value

    def validate_negative_prompt(self, value: str) -> str:
        _refuse_control_characters(value, "The negative prompt")
        return value

    def collect_errors(self, attrs: dict[str, Any]) -> dict[str, str]:
        errors = super().collect_errors(attrs)
        if attrs.get("model") and attrs.get("category"):
            errors["category"] = (
                "Give model or category, not both (neither uses the organization's default)."
            )
        has_prompt, has_template = "prompt" in attrs, "template" in attrs
        if has_prompt and has_template:
            errors["template"] = "Give prompt or template, not both."
        elif not has_prompt and not has_template:
            errors["prompt"] = "Give a prompt, or a template with its variables."
        if not has_template:
            if "variables" in attrs:
                errors["variables"] = "Variables need a template; a raw prompt has none."
            if "template_version" in attrs:
                errors["template_version"] = "template_version needs a template."
        errors.update(_variation_errors(attrs))
        return errors


def _variation_errors(attrs: Mapping[str, Any]) -> dict[str, str]:
    """What a request's mode, source and mask fields say together (before any lookup)."""
    errors: dict[str, str] = {}
    mode = attrs.get("mode", "txt2img")
    has_source = "source_image" in attrs or "source_upload" in attrs
    if "source_image" in attrs and "source_upload" in attrs:
        errors["source_upload"] = "Give source_image or source_upload, not both."
    if mode == "txt2img":
        for name in ("strength", "source_image", "source_upload", "mask_upload", "feather"):
            if name in attrs:
                errors[name] = f"{name} is for mode img2img or inpaint; this request is txt2img."
        return errors
    if not has_source:
        errors["source_image"] = (
            f"Mode {mode} needs a source: source_image (a generated image's id) or "
            "source_upload (an upload's id)."
        )
    if mode == "inpaint" and "mask_upload" not in attrs:
        errors["mask_upload"] = "Mode inpaint needs a mask: upload one (kind=mask) and give its id."
    if mode == "img2img":
        for name in ("mask_upload", "feather"):
            if name in attrs:
                errors[name] = f"{name} is for mode inpaint; this request is img2img."
    return errors


# --- Resolution --------------------------------------------------------------------------------


def _model_family_and_defaults(resolved_model: Any) -> tuple[str, str | None, dict[str, Any]]:
    """(family, served model name, normalized defaults) of a registry or provider target."""
    base = getattr(resolved_model, "base", None)
    source = base if base is not None else resolved_model
    family = str(source.family)
    raw = dict(getattr(source, "default_params", None) or {})
    defaults: dict[str, Any] = {}
    native = raw.get("native_size")
    width, height = raw.get("width", native), raw.get("height", native)
    if isinstance(width, int) and isinstance(height, int):
        defaults["width"], defaults["height"] = width, height
    if "cfg_scale" in raw or "cfg" in raw:
        defaults["cfg_scale"] = float(raw.get("cfg_scale", raw.get("cfg")))
    if isinstance(raw.get("steps"), int):
        defaults["steps"] = raw["steps"]
    if raw.get("scheduler") in SCHEDULERS:
        defaults["scheduler"] = raw["scheduler"]
    return family, getattr(source, "name", None), defaults


def _first(layers: list[tuple[str, Mapping[str, Any]]], key: str) -> tuple[Any, str] | None:
    for origin, layer in layers:
        if key in layer and layer[key] is not None:
            return layer[key], origin
    return None


def _check_side(name: str, value: int, *, family: str, origin: str) -> str | None:
    limits = family_limits(family)
    if limits.min_side <= value <= limits.max_side:
        return None
    where = "" if origin == "request" else f" (from the {origin})"
    return (
        f"{value}{where} is outside {limits.min_side}–{limits.max_side}, the bounds of the "
        f"'{family}' model family."
    )


def _size(
    layers: list[tuple[str, Mapping[str, Any]]],
    *,
    family: str,
    model_defaults: Mapping[str, Any],
    errors: dict[str, str],
) -> tuple[int, int]:
    limits = family_limits(family)
    native_w = model_defaults.get("width", limits.native_side)
    native_h = model_defaults.get("height", limits.native_side)
    for origin, layer in layers:
        if "width" in layer and "height" in layer:
            width, height = int(layer["width"]), int(layer["height"])
            for name, value in (("width", width), ("height", height)):
                problem = _check_side(name, value, family=family, origin=origin)
                if problem:
                    errors[name] = problem
            return width, height
        if layer.get("aspect_ratio"):
            return size_for_aspect_ratio(
                layer["aspect_ratio"], native_area=native_w * native_h, family=family
            )
    return native_w, native_h


def _grounded_model_names() -> list[str]:
    from models_registry.models import BaseModel, BuildStatus

    names = BaseModel.objects.filter(grounded=True, status=BuildStatus.READY)
    return list(names.order_by("name").values_list("name", flat=True))


def _layout(
    layers: list[tuple[str, Mapping[str, Any]]],
    *,
    resolved_model: Any,
    served_by: str | None,
    errors: dict[str, str],
) -> list[dict[str, Any]]:
    found = _first(layers, "layout")
    if not found or not found[0]:
        return []
    layout, origin = found
    base = getattr(resolved_model, "base", None)
    if base is not None and getattr(base, "grounded", False):
        try:
            return layout_clean(layout)  # a template's stored layout is checked again here
        except ValueError as exc:
            errors["layout"] = str(exc) if origin == "request" else f"{exc} (from the {origin})"
            return []
    where = "" if origin == "request" else f" (from the {origin})"
    able = _grounded_model_names()
    errors["layout"] = f"The model '{served_by}' cannot follow a layout{where}; " + (
        f"models that can: {', '.join(able)}." if able else "no GLIGEN model is registered."
    )
    return []


def _stored_source(org: Any, *, kind: str, ident: Any, field_name: str) -> dict[str, Any]:
    """The image or upload a variation starts from, as its params record it; ValidationError
    naming ``field_name`` when this organization has no such object (another organization's
    is the same "no such" as a missing one)."""
    from .models import GeneratedImage, Upload, UploadKind
    from .selectors import image_withheld

    if kind == "image":
        obj = GeneratedImage.objects.filter(organization=org, pk=ident).first()
        if obj is None:
            raise ValidationError({field_name: f"No generated image {ident} here."})
        if image_withheld(obj):
            raise ValidationError(
                {
                    field_name: f"Image {ident} was withheld by the safety check; it cannot "
                    "be varied."
                }
            )
    else:
        wanted = UploadKind.MASK if field_name == "mask_upload" else UploadKind.IMAGE
        obj = Upload.objects.filter(organization=org, pk=ident).first()
        if obj is None:
            raise ValidationError({field_name: f"No upload {ident} here."})
        if obj.kind != wanted:
            raise ValidationError(
                {field_name: f"Upload {ident} is a {obj.kind}; {field_name} needs a {wanted}."}
            )
    return {
        "kind": kind,
        "id": str(obj.pk),
        "storage_key": obj.storage_key,
        "sha256": obj.sha256,
        "width": obj.width,
        "height": obj.height,
    }


def _variation(
    org: Any, data: Mapping[str, Any], *, hosted: bool, served_by: str | None,
    errors: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    """A variation's mode, strength, and source and mask records (looked up in ``org``)."""
    mode = data.get("mode", "txt2img")
    if mode == "txt2img":
        return {"mode": mode}
    if hosted:
        errors["mode"] = (
            f"The hosted model '{served_by}' makes images from text only; {mode} needs a local "
            "model."
        )
        return {"mode": mode}
    out: dict[str, Any] = {"mode": mode, "strength": data.get("strength", DEFAULT_STRENGTH[mode])}
    try:
        if data.get("source_image"):
            out["source"] = _stored_source(
                org, kind="image", ident=data["source_image"], field_name="source_image"
            )
        else:
            out["source"] = _stored_source(
                org, kind="upload", ident=data["source_upload"], field_name="source_upload"
            )
        if mode == "inpaint":
            out["mask"] = _stored_source(
                org, kind="upload", ident=data["mask_upload"], field_name="mask_upload"
            )
    except ValidationError as exc:
        errors.update({k: " ".join(v) for k, v in exc.message_dict.items()})
    return out


def _source_size(source: Mapping[str, Any], family: str) -> dict[str, int]:
    """A variation's default size: its source's, scaled down into the family's bounds and
    rounded to multiples of 8 (so a 768×512 photo is not squashed into a square)."""
    limits = family_limits(family)
    width, height = int(source["width"]), int(source["height"])
    scale = min(1.0, limits.max_side / max(width, height))

    def snap(side: float) -> int:
        return min(max(round(side * scale / 8) * 8, limits.min_side), limits.max_side)

    return {"width": snap(width), "height": snap(height)}


def _check_variation(
    variation: dict[str, Any], data: Mapping[str, Any], *, steps: int, width: int, height: int,
    errors: dict[str, str],
) -> None:  # fmt: skip
    """Fill in the soft edge's default; refuse a strength that runs no step and a mask whose
    proportions are not its source's."""
    if variation["mode"] == "txt2img" or "strength" not in variation:
        return
    strength = float(variation["strength"])
    if int(steps * strength) < 1:
        errors["strength"] = (
            f"At {steps} steps, strength {strength:g} runs no denoising step; use at least "
            f"{math.ceil(1000 / steps) / 1000:g} (or more steps)."
        )
    source, mask = variation.get("source"), variation.get("mask")
    if variation["mode"] == "inpaint":
        variation["feather"] = float(data.get("feather", round(min(width, height) / 32, 1)))
        if source and mask:
            ratio = (source["width"] / source["height"]) / (mask["width"] / mask["height"])
            if abs(ratio - 1.0) > 0.02:
                errors["mask_upload"] = (
                    f"The mask is {mask['width']}×{mask['height']} but the source is "
                    f"{source['width']}×{source['height']}: draw the mask at the source's "
                    "proportions."
                )


def _load_template(*, org: Any, application: str, version: int | None) -> Any:
    from .template_selectors import get_prompt_template_for_org

    try:
        return get_prompt_template_for_org(org=org, application=application, version=version)
    except Http404:
        which = f"'{application}' version {version}" if version else f"'{application}'"
        raise ValidationError(
            {"template": f"No prompt template {which} here; see GET /api/v1/templates."}
        ) from None


def resolve_params(*, org: Any, data: Mapping[str, Any], resolved_model: Any) -> GenerationParams:
    """Resolve a validated request (``GenerationRequestSerializer.validated_data``) for the model
    that will serve it (a registry ``ResolvedModel`` or a provider target).

    Raises ``django.core.exceptions.ValidationError`` keyed by field for family bounds, unknown
    templates and template variables.
    """
    from .templates import TemplateSyntaxError, TemplateVariablesError, render_template

    family, served_by, model_defaults = _model_family_and_defaults(resolved_model)
    limits = family_limits(family)
    template = None
    if data.get("template"):
        template = _load_template(
            org=org, application=data["template"], version=data.get("template_version")
        )
    style_name = data.get("style", template.style if template else "")
    try:
        style: StylePreset | None = get_style(style_name) if style_name else None
    except UnknownStyle as exc:
        raise ValidationError({"style": str(exc)}) from None

    request_layer = {k: data[k] for k in PARAM_KEYS if k in data}
    layers: list[tuple[str, Mapping[str, Any]]] = [("request", request_layer)]
    if template is not None:
        origin = f"template '{template.application}' v{template.version}"
        layers.append((origin, template.default_params or {}))
    if style is not None:
        layers.append((f"style '{style.name}'", style.params))
    layers.append(("model defaults", model_defaults))
    layers.append(("protocol defaults", PROTOCOL_DEFAULTS))

    errors: dict[str, str] = {}
    variation = _variation(
        org, data, hosted=family == "provider", served_by=served_by, errors=errors
    )
    if variation.get("source"):  # a variation is drawn at its source's size unless told
        layers.insert(-2, ("source image", _source_size(variation["source"], family)))
    width, height = _size(layers, family=family, model_defaults=model_defaults, errors=errors)
    steps, steps_origin = _first(layers, "steps")  # type: ignore[misc]
    if steps > limits.max_steps:
        errors["steps"] = f"{steps} ({steps_origin}) is above {limits.max_steps} for '{family}'."
    cfg_scale = float(_first(layers, "cfg_scale")[0])  # type: ignore[index]
    num_images = int(_first(layers, "num_images")[0])  # type: ignore[index]
    scheduler = str(_first(layers, "scheduler")[0])  # type: ignore[index]
    seed_found = _first(layers, "seed")
    seed = int(seed_found[0]) if seed_found else secrets.randbelow(SEED_MAX + 1)
    layout = _layout(layers, resolved_model=resolved_model, served_by=served_by, errors=errors)
    _check_variation(variation, data, steps=int(steps), width=width, height=height, errors=errors)

    variables = {k: str(v) for k, v in (data.get("variables") or {}).items()}
    negative_override = data.get("negative_prompt")
    if template is not None:
        try:
            rendered = render_template(
                template, variables, style=style_name, negative_prompt=negative_override
            )
        except (TemplateVariablesError, TemplateSyntaxError) as exc:
            errors["variables"] = str(exc)
            rendered = None
        prompt = rendered.prompt if rendered else ""
        negative = rendered.negative_prompt if rendered else ""
    else:
        prompt = apply_style(" ".join(str(data["prompt"]).split()), style_name)
        negative = apply_style_negative(negative_override or "", style_name)
    if len(prompt) > MAX_RENDERED_PROMPT_CHARS:
        field_name = "variables" if template is not None else "prompt"
        errors[field_name] = (
            f"The rendered prompt has {len(prompt)} characters, above "
            f"{MAX_RENDERED_PROMPT_CHARS}; shorten the values."
        )
    if errors:
        raise ValidationError(errors)

    return GenerationParams(
        prompt=prompt,
        negative_prompt=negative,
        style=style_name,
        width=width,
        height=height,
        cfg_scale=cfg_scale,
        steps=int(steps),
        seed=seed,
        num_images=num_images,
        scheduler=scheduler,
        family=family,
        model=data.get("model"),
        category=data.get("category"),
        base_model=served_by,
        template_id=template.pk if template else None,
        template_application=template.application if template else None,
        template_version=template.version if template else None,
        variables=variables,
        seed_chosen=seed_found is None,
        layout=layout,
        **variation,
    )
