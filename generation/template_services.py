"""Writes of prompt templates. A template is never changed in place: an edit writes version
``latest + 1``, so a job that recorded its template version can always show what it rendered.
Both writes are audited."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404

from tenants.audit import AuditVerb
from tenants.principal import Principal
from tenants.roles import Action
from tenants.services import audit_event_record, require

from .models import PromptTemplate
from .protocol import MAX_NEGATIVE_PROMPT_CHARS, MAX_VARIABLES, ProtocolParamsSerializer
from .rubrics import (
    DEFAULT_PASS_THRESHOLD,
    DEFAULT_QUALITY_ATTEMPTS,
    max_attempts_clean,
    rubric_clean,
    threshold_clean,
)
from .styles import STYLE_NAMES
from .templates import TemplateSyntaxError, template_variables

MAX_TEMPLATE_CHARS = 2000
MAX_FEW_SHOT_EXAMPLES = 20
MAX_EXAMPLE_CHARS = 1000
EDITABLE_FIELDS = (
    "text",
    "few_shot_examples",
    "style",
    "negative_prompt",
    "default_params",
    "rubric",
    "pass_threshold",
    "max_attempts",
)


def _string_list(name: str, value: Any, *, max_items: int, max_chars: int) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValidationError({name: "Must be a list of strings."})
    items = [" ".join(v.split()) for v in value]
    if any(not v for v in items):
        raise ValidationError({name: "Entries may not be blank."})
    if len(items) > max_items:
        raise ValidationError({name: f"At most {max_items} entries."})
    too_long = [i for i, v in enumerate(items) if len(v) > max_chars]
    if too_long:
        raise ValidationError({name: f"Entries {too_long} are longer than {max_chars} characters."})
    return items


def _param_errors(errors: Mapping[str, Any]) -> list[str]:
    messages = []
    for key, value in errors.items():
        text = value[0] if isinstance(value, list) and value else value
        messages.append(f"{key}: {text}")
    return messages


def _validated_fields(
    *,
    text: str,
    few_shot_examples: Any,
    style: str,
    negative_prompt: str,
    default_params: Any,
    rubric: Any,
    pass_threshold: Any = DEFAULT_PASS_THRESHOLD,
    max_attempts: Any = DEFAULT_QUALITY_ATTEMPTS,
) -> dict[str, Any]:
    """Check every editable field; errors name the field (and the parameter within
    ``default_params``)."""
    text = (text or "").strip()
    if not text:
        raise ValidationError({"text": "The template text is blank."})
    if len(text) > MAX_TEMPLATE_CHARS:
        raise ValidationError({"text": f"At most {MAX_TEMPLATE_CHARS} characters."})
    try:
        names = template_variables(text)
    except TemplateSyntaxError as exc:
        raise ValidationError({"text": str(exc)}) from None
    if len(names) > MAX_VARIABLES:
        raise ValidationError({"text": f"At most {MAX_VARIABLES} distinct variables."})
    if style and style not in STYLE_NAMES:
        raise ValidationError(
            {"style": f"Unknown style '{style}'; use one of: {', '.join(STYLE_NAMES)}."}
        )
    negative_prompt = (negative_prompt or "").strip()
    if len(negative_prompt) > MAX_NEGATIVE_PROMPT_CHARS:
        raise ValidationError(
            {"negative_prompt": f"At most {MAX_NEGATIVE_PROMPT_CHARS} characters."}
        )
    if not isinstance(default_params, dict):
        raise ValidationError({"default_params": "Must be an object of protocol parameters."})
    params = ProtocolParamsSerializer(data=default_params)
    if not params.is_valid():
        raise ValidationError({"default_params": _param_errors(params.errors)})
    return {
        "text": text,
        "few_shot_examples": _string_list(
            "few_shot_examples",
            few_shot_examples,
            max_items=MAX_FEW_SHOT_EXAMPLES,
            max_chars=MAX_EXAMPLE_CHARS,
        ),
        "style": style or "",
        "negative_prompt": negative_prompt,
        "default_params": dict(params.validated_data),
        "rubric": rubric_clean(rubric, variables=frozenset(names)),
        "pass_threshold": threshold_clean(pass_threshold),
        "max_attempts": max_attempts_clean(max_attempts),
    }


def _snapshot(template: PromptTemplate) -> dict[str, Any]:
    return {name: getattr(template, name) for name in EDITABLE_FIELDS}


@transaction.atomic
def prompt_template_create(
    *,
    actor: Principal,
    application: str,
    text: str,
    few_shot_examples: list[str] | None = None,
    style: str = "",
    negative_prompt: str = "",
    default_params: dict[str, Any] | None = None,
    rubric: list[Any] | None = None,
    pass_threshold: float = DEFAULT_PASS_THRESHOLD,
    max_attempts: int = DEFAULT_QUALITY_ATTEMPTS,
) -> PromptTemplate:
    """Version 1 of a new application's template."""
    require(actor, Action.GENERATE)
    fields = _validated_fields(
        text=text,
        few_shot_examples=few_shot_examples or [],
        style=style,
        negative_prompt=negative_prompt,
        default_params=default_params or {},
        rubric=rubric or [],
        pass_threshold=pass_threshold,
        max_attempts=max_attempts,
    )
    exists = PromptTemplate.objects.filter(organization=actor.org, application=application)
    if exists.exists():
        raise ValidationError(
            {
                "application": f"A template '{application}' already exists; edit it "
                f"(PUT /api/v1/templates/{application}) to make a new version."
            }
        )
    try:
        with transaction.atomic():
            template = PromptTemplate.objects.create(
                organization=actor.org,
                application=application,
                version=1,
                created_by=actor.user,
                **fields,
            )
    except IntegrityError:
        raise ValidationError(
            {"application": f"A template '{application}' was just created; edit it instead."}
        ) from None
    audit_event_record(
        org=actor.org,
        actor=actor,
        verb=AuditVerb.PROMPT_TEMPLATE_CREATED,
        obj=template,
        after={"application": application, "version": 1},
    )
    return template


@transaction.atomic
def prompt_template_update(
    *,
    actor: Principal,
    application: str,
    changes: Mapping[str, Any],
    base_version: int | None = None,
) -> tuple[PromptTemplate, bool]:
    """Write version ``latest + 1`` with ``changes`` over the latest version's fields.

    Returns ``(template, created)``; an edit that changes nothing writes no version and returns
    the latest. ``base_version``, when given, must still be the latest version (optimistic
    locking: two people editing the same version do not silently overwrite each other).
    """
    require(actor, Action.GENERATE)
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
    if unknown:
        raise ValidationError(dict.fromkeys(unknown, "Not an editable template field."))
    latest = (
        PromptTemplate.objects.select_for_update()
        .filter(organization=actor.org, application=application)
        .order_by("-version")
        .first()
    )
    if latest is None:
        raise Http404("No prompt template matches the given query.")
    if base_version is not None and base_version != latest.version:
        raise ValidationError(
            {
                "base_version": f"Version {base_version} is no longer the latest (it is "
                f"{latest.version}); reload the template and apply your edit again."
            }
        )
    before = _snapshot(latest)
    fields = _validated_fields(**(before | dict(changes)))
    changed = [name for name in EDITABLE_FIELDS if fields[name] != before[name]]
    if not changed:
        return latest, False
    try:
        with transaction.atomic():
            template = PromptTemplate.objects.create(
                organization=actor.org,
                application=application,
                version=latest.version + 1,
                created_by=actor.user,
                **fields,
            )
    except IntegrityError:
        raise ValidationError(
            {"base_version": "Someone else saved a new version at the same time; reload it."}
        ) from None
    audit_event_record(
        org=actor.org,
        actor=actor,
        verb=AuditVerb.PROMPT_TEMPLATE_EDITED,
        obj=template,
        before={"version": latest.version} | {name: before[name] for name in changed},
        after={"version": template.version} | {name: fields[name] for name in changed},
    )
    return template, True
