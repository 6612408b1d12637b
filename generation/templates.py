"""Rendering prompt templates: ``{variables}``, few-shot examples, style preset.

Variables. A template's text holds plain ``{name}`` placeholders (``{{`` and ``}}`` are literal
braces). The text is parsed with ``string.Formatter().parse`` and only bare identifiers are
accepted: attribute or index access (``{x.__class__}``, ``{x[0]}``), conversions (``{x!r}``),
format specs (``{x:>9}``) and positional fields (``{}``, ``{0}``) are refused when the template is
saved, so rendering is plain substitution and can never reach into Python objects. Rendering
refuses a call whose variables do not match the template, naming every missing and every unknown
variable in one error.

Few-shot examples. A template may carry example prompts that show the look an application wants
("a jar of honey, soft window light, white marble counter, centered"). Without an LLM they
shape the rendered prompt by a deterministic rule:

1. each example is split into comma-separated phrases; the first phrase is the example's subject
   and is set aside (it describes *that* product, not the look);
2. a phrase is *shared* when more than half of the examples contain it (compared
   case-insensitively, whitespace collapsed); with one example every non-subject phrase counts;
3. the shared phrases the rendered text does not already contain are appended, in the order they
   first appear in the examples, at most ``MAX_FEW_SHOT_PHRASES`` of them.

So the examples' common lighting, background and composition carry over to every product, while
each example's own subject does not. Style-preset phrases are appended after them, and the
style's negative phrases after the template's negative prompt.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .styles import append_phrases, apply_style, apply_style_negative

MAX_FEW_SHOT_PHRASES = 8


class TemplateLike(Protocol):
    pk: Any
    version: int
    text: str
    few_shot_examples: list[str]
    style: str
    negative_prompt: str


@dataclass(frozen=True)
class RenderedPrompt:
    prompt: str
    negative_prompt: str
    style: str
    template_id: int | None
    template_version: int | None


class TemplateSyntaxError(ValueError):
    """The template text has a placeholder other than a plain ``{name}``."""


class TemplateVariablesError(ValueError):
    """Variables given for rendering do not match the template's placeholders."""

    def __init__(self, *, missing: list[str], unknown: list[str], expected: list[str]) -> None:
        self.missing = missing
        self.unknown = unknown
        self.expected = expected
        parts = []
        if missing:
            parts.append(f"missing variables: {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown variables: {', '.join(unknown)}")
        uses = ", ".join(expected) if expected else "no variables"
        message = "; ".join(parts)
        super().__init__(f"{message[0].upper()}{message[1:]}. The template uses: {uses}.")


def template_variables(text: str) -> list[str]:
    """The distinct placeholder names of ``text`` in order of first use.

    Raises ``TemplateSyntaxError`` for anything but plain ``{identifier}`` placeholders.
    """
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:  # unbalanced braces
        raise TemplateSyntaxError(
            f"Template text is not valid: {exc}. Write literal braces as {{{{ and }}}}."
        ) from None
    for _literal, field_name, format_spec, conversion in parsed:
        if field_name is None:
            continue
        if not field_name.isidentifier():
            raise TemplateSyntaxError(
                f"Placeholder '{{{field_name}}}' is not allowed: use a plain name such as "
                "{product} (no attribute or index access, no positional fields)."
            )
        if conversion or format_spec:
            raise TemplateSyntaxError(
                f"Placeholder '{{{field_name}}}' may not have a conversion or format spec; "
                "use a plain {name}."
            )
        if field_name not in names:
            names.append(field_name)
    return names


def _substitute(text: str, variables: Mapping[str, str]) -> str:
    out: list[str] = []
    for literal, field_name, _spec, _conversion in string.Formatter().parse(text):
        out.append(literal)
        if field_name is not None:
            out.append(variables[field_name])
    return "".join(out)


def _normalize(phrase: str) -> str:
    return " ".join(phrase.lower().split()).rstrip(".")


def shared_example_phrases(examples: Iterable[str]) -> list[str]:
    """Phrases (after each example's subject) found in more than half of ``examples``."""
    per_example: list[list[tuple[str, str]]] = []
    for example in examples:
        phrases = [p.strip().rstrip(".").strip() for p in example.split(",")]
        phrases = [p for p in phrases[1:] if p]
        per_example.append([(_normalize(p), p) for p in phrases])
    if not per_example:
        return []
    counts: dict[str, int] = {}
    first_form: dict[str, str] = {}
    for phrases in per_example:
        for key, original in dict.fromkeys(phrases):
            counts[key] = counts.get(key, 0) + 1
            first_form.setdefault(key, original)
    needed = len(per_example) / 2
    return [first_form[key] for key in first_form if counts[key] > needed]


def render_template(
    template: TemplateLike,
    variables: Mapping[str, Any],
    *,
    style: str | None = None,
    negative_prompt: str | None = None,
) -> RenderedPrompt:
    """Render ``template`` with ``variables`` (see the module docstring for the rules).

    ``style`` and ``negative_prompt``, when given, replace the template's own (a request's values
    take precedence over the template's).
    """
    expected = template_variables(template.text)
    given = {str(k): v for k, v in (variables or {}).items()}
    missing = [name for name in expected if name not in given]
    unknown = sorted(name for name in given if name not in expected)
    if missing or unknown:
        raise TemplateVariablesError(missing=missing, unknown=unknown, expected=expected)
    values = {name: " ".join(str(given[name]).split()) for name in expected}
    prompt = _substitute(template.text, values).strip()
    present = _normalize(prompt)
    shared = [
        p
        for p in shared_example_phrases(template.few_shot_examples or [])
        if _normalize(p) not in present
    ]
    prompt = append_phrases(prompt, shared[:MAX_FEW_SHOT_PHRASES])
    style = template.style if style is None else style
    negative = template.negative_prompt if negative_prompt is None else negative_prompt
    return RenderedPrompt(
        prompt=apply_style(prompt, style),
        negative_prompt=apply_style_negative(negative or "", style),
        style=style or "",
        template_id=template.pk,
        template_version=template.version,
    )
