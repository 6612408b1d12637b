"""Writes of the quality gate's configuration: a category's rubric, an organization's optional
judges, and rubric drafts from the LLM. Rubrics are validated by ``generation.rubrics`` here, so
the API and the studio refuse the same things with the same messages. Changes are audited."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from models_registry.models import Category
from tenants.audit import AuditVerb
from tenants.errors import Conflict, PeerUnavailable
from tenants.principal import Principal
from tenants.roles import Action
from tenants.services import audit_event_record, require

from .models import CategoryRubric, PromptTemplate, QualitySettings
from .rubrics import DEFAULT_PASS_THRESHOLD, rubric_clean, threshold_clean
from .templates import template_variables

SETTING_FIELDS = ("clip_enabled", "vlm_enabled", "llm_refine_enabled")


class LlmNotConfigured(Conflict):
    code = "llm_not_configured"


class LlmUnavailable(PeerUnavailable):
    code = "llm_unavailable"


@transaction.atomic
def category_rubric_update(
    *, actor: Principal, category: Category, questions: Any, pass_threshold: Any = None
) -> CategoryRubric:
    """Replace the category's rubric (questions may not use template variables: a category's
    images come from many templates)."""
    require(actor, Action.MANAGE_MODELS)
    cleaned = rubric_clean(questions, field="questions", variables=frozenset())
    threshold = threshold_clean(
        DEFAULT_PASS_THRESHOLD if pass_threshold is None else pass_threshold
    )
    rubric, _ = CategoryRubric.objects.select_for_update().get_or_create(
        category=category, defaults={"organization": actor.org}
    )
    before = {"questions": rubric.questions, "pass_threshold": rubric.pass_threshold}
    rubric.questions = cleaned
    rubric.pass_threshold = threshold
    rubric.updated_by = actor.user
    rubric.updated_at = timezone.now()
    rubric.save()
    audit_event_record(
        org=actor.org,
        actor=actor,
        verb=AuditVerb.CATEGORY_RUBRIC_EDITED,
        obj=category,
        before=before,
        after={"questions": cleaned, "pass_threshold": threshold},
    )
    return rubric


@transaction.atomic
def quality_settings_update(*, actor: Principal, changes: dict[str, Any]) -> QualitySettings:
    """Turn the organization's optional judges on or off (booleans, by name)."""
    require(actor, Action.MANAGE_MODELS)
    unknown = sorted(set(changes) - set(SETTING_FIELDS))
    if unknown:
        raise ValidationError(dict.fromkeys(unknown, "Not a quality setting."))
    wrong = [name for name, value in changes.items() if not isinstance(value, bool)]
    if wrong:
        raise ValidationError(dict.fromkeys(wrong, "Must be true or false."))
    row, _ = QualitySettings.objects.select_for_update().get_or_create(organization=actor.org)
    before = {name: getattr(row, name) for name in SETTING_FIELDS}
    for name, value in changes.items():
        setattr(row, name, value)
    row.updated_at = timezone.now()
    row.save()
    after = {name: getattr(row, name) for name in SETTING_FIELDS}
    if after != before:
        audit_event_record(
            org=actor.org,
            actor=actor,
            verb=AuditVerb.QUALITY_SETTINGS_CHANGED,
            obj=row,
            before=before,
            after=after,
        )
    return row


def rubric_draft(*, actor: Principal, template: PromptTemplate, description: str) -> list[dict]:
    """Questions the LLM drafts for ``template`` from ``description`` (not saved: a person edits
    and saves them as a new template version)."""
    from .engine.quality.llm import LlmError, draft_rubric
    from .quality import llm_client

    require(actor, Action.GENERATE)
    if not settings.EASEL_LLM_URL:
        raise LlmNotConfigured(
            "No LLM endpoint is configured (EASEL_LLM_URL), so rubrics cannot be drafted; "
            "write the questions by hand."
        )
    description = " ".join((description or "").split())
    if not description:
        raise ValidationError({"description": "Describe what a good image shows."})
    variables = template_variables(template.text)
    try:
        drafted = draft_rubric(llm_client(), description=description, variables=variables)
    except LlmError as exc:
        raise LlmUnavailable(f"The LLM could not draft a rubric: {exc}") from None
    return rubric_clean(drafted, variables=frozenset(variables))
