"""Named style presets of the unified parameter protocol.

A style is a reusable bundle of photographic phrases (lighting, background, framing) that
PIXEL-style templates put into every prompt of an application, plus phrases to keep out of the
image and, optionally, parameter defaults. ``apply_style`` appends the phrases a prompt does not
already contain, so applying a style twice, or to a prompt that already says "soft studio
lighting", never repeats a phrase.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class StylePreset:
    name: str
    description: str
    lighting: str
    background: str
    framing: str
    negative: tuple[str, ...] = ()
    # Protocol parameters this style suggests; below a template's and a request's in precedence.
    params: MappingProxyType[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def phrases(self) -> tuple[str, ...]:
        return tuple(p for p in (self.lighting, self.background, self.framing) if p)


def _params(**values: Any) -> MappingProxyType[str, Any]:
    return MappingProxyType(values)


STYLES: MappingProxyType[str, StylePreset] = MappingProxyType(
    {
        preset.name: preset
        for preset in (
            StylePreset(
                name="studio",
                description="Clean e-commerce packshot.",
                lighting="soft studio lighting",
                background="seamless light grey backdrop",
                framing="centered product shot",
                negative=("clutter", "harsh shadows"),
            ),
            StylePreset(
                name="white-background",
                description="Marketplace listing on pure white.",
                lighting="even diffuse lighting",
                background="pure white background",
                framing="centered, product fills the frame",
                negative=("shadows on background", "props", "text"),
                params=_params(aspect_ratio="1:1"),
            ),
            StylePreset(
                name="lifestyle",
                description="The product in use, in a real home.",
                lighting="natural window light",
                background="cozy kitchen setting",
                framing="medium shot, shallow depth of field",
                negative=("studio backdrop",),
                params=_params(aspect_ratio="4:3"),
            ),
            StylePreset(
                name="flat-lay",
                description="Top-down arrangement on a surface.",
                lighting="bright even overhead lighting",
                background="wooden table surface",
                framing="top-down flat lay, overhead view",
                negative=("perspective distortion",),
                params=_params(aspect_ratio="1:1"),
            ),
            StylePreset(
                name="seasonal",
                description="Holiday campaign look.",
                lighting="warm golden light",
                background="festive seasonal decorations",
                framing="product in the foreground, bokeh background",
                negative=("dull colors",),
                params=_params(aspect_ratio="16:9"),
            ),
            StylePreset(
                name="dark-moody",
                description="Editorial low-key look.",
                lighting="low-key dramatic side lighting",
                background="dark slate background",
                framing="close-up, rule of thirds",
                negative=("overexposed", "flat lighting"),
            ),
        )
    }
)

STYLE_NAMES: tuple[str, ...] = tuple(STYLES)


class UnknownStyle(ValueError):
    """The style name is not one of ``STYLE_NAMES``."""


def get_style(name: str) -> StylePreset:
    try:
        return STYLES[name]
    except KeyError:
        raise UnknownStyle(
            f"Unknown style '{name}'; use one of: {', '.join(STYLE_NAMES)}."
        ) from None


def _normalize(text: str) -> str:
    return " ".join(text.lower().split())


def append_phrases(text: str, phrases: tuple[str, ...] | list[str]) -> str:
    """Append each phrase that ``text`` (or an earlier appended phrase) does not already contain,
    comma-separated, in order."""
    parts = [text.strip().rstrip(",")] if text.strip() else []
    seen = _normalize(", ".join(parts))
    for phrase in phrases:
        phrase = phrase.strip()
        if phrase and _normalize(phrase) not in seen:
            parts.append(phrase)
            seen = f"{seen}, {_normalize(phrase)}"
    return ", ".join(parts)


def apply_style(prompt: str, style: str | None) -> str:
    """``prompt`` with the style's lighting, background and framing phrases it lacks."""
    if not style:
        return prompt
    return append_phrases(prompt, get_style(style).phrases)


def apply_style_negative(negative_prompt: str, style: str | None) -> str:
    """``negative_prompt`` with the style's negative phrases it lacks."""
    if not style:
        return negative_prompt
    return append_phrases(negative_prompt, get_style(style).negative)
