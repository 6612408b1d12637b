"""Quality pages: prompt templates with their rubrics (editing one writes a new template
version), a category's rubric, and the organization's optional judges. Every write goes through
the same services as the API, so a refused rubric gets the same message here as there."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from generation import quality_services, template_selectors, template_services
from generation.models import CategoryRubric
from generation.quality import quality_settings_for
from generation.rubrics import CHECK_KINDS, DEFAULT_PASS_THRESHOLD, RUBRIC_JUDGES
from models_registry.selectors import get_category_for_org
from tenants.roles import Action

from ..access import refused, render_page, studio_view
from ..errors import field_messages

EXTRA_ROWS = 3
SETTING_LABELS = (
    ("clip_enabled", "CLIP similarity judge", "EASEL_CLIP_MODEL_PATH"),
    ("vlm_enabled", "VLM judge (OpenAI-compatible endpoint)", "EASEL_VLM_URL"),
    ("llm_refine_enabled", "Refine prompts with the LLM", "EASEL_LLM_URL"),
)


def _posted_rubric(post: Any) -> list[Any]:
    """The rows of the rubric form, in order; a row whose question is blank is left out (the
    form always offers a few empty rows). A weight that is not a number is passed on as typed,
    so the service refuses it with its own message."""
    items = []
    for n in range(int(post.get("rows") or 0)):
        question = (post.get(f"q{n}-question") or "").strip()
        if not question:
            continue
        weight_text = (post.get(f"q{n}-weight") or "1").strip()
        try:
            weight: Any = float(weight_text)
        except ValueError:
            weight = weight_text
        judge = post.get(f"q{n}-judge") or "vlm"
        items.append(
            {
                "question": question,
                "expected": post.get(f"q{n}-expected") or "yes",
                "weight": weight,
                "judge": judge,
                "check": post.get(f"q{n}-check", "") if judge == "check" else "",
            }
        )
    return items


def _number(post: Any, name: str, cast: type) -> Any:
    raw = (post.get(name) or "").strip()
    try:
        return cast(raw)
    except ValueError:
        return raw  # refused by the service, naming the field


def _rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    blank = {"question": "", "expected": True, "weight": 1.0, "judge": "check", "check": ""}
    return [*items, *([blank] * EXTRA_ROWS)]


def _form_context(items: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    rows = _rows(items)
    return {
        "rows": rows,
        "row_count": len(rows),
        "judges": RUBRIC_JUDGES,
        "check_kinds": CHECK_KINDS,
        **extra,
    }


@studio_view(Action.VIEW)
def template_list(request: HttpRequest) -> HttpResponse:
    templates = template_selectors.prompt_template_latest_list(org=request.principal.org)
    return render_page(
        request, "studio/quality/template_list.html", {"templates": templates}, section="quality"
    )


@studio_view(Action.VIEW)
def template_rubric(request: HttpRequest, application: str) -> HttpResponse:
    org = request.principal.org
    template = template_selectors.get_prompt_template_for_org(org=org, application=application)
    errors: dict[str, str] = {}
    items = template.rubric
    threshold: Any = template.pass_threshold
    attempts: Any = template.max_attempts
    if request.method == "POST":
        if not request.principal.can(Action.GENERATE):
            return refused(request, Action.GENERATE)
        items = _posted_rubric(request.POST)
        threshold = _number(request.POST, "pass_threshold", float)
        attempts = _number(request.POST, "max_attempts", int)
        try:
            saved, created = template_services.prompt_template_update(
                actor=request.principal,
                application=application,
                changes={"rubric": items, "pass_threshold": threshold, "max_attempts": attempts},
                base_version=_number(request.POST, "base_version", int) or None,
            )
        except ValidationError as exc:
            errors = field_messages(exc)
        else:
            messages.success(
                request,
                f"Saved as version {saved.version}." if created else "Nothing changed.",
            )
            return redirect("studio:template_rubric", application=application)
    return render_page(
        request,
        "studio/quality/template_rubric.html",
        _form_context(
            items,
            template=template,
            pass_threshold=threshold,
            max_attempts=attempts,
            errors=errors,
            can_edit=request.principal.can(Action.GENERATE),
        ),
        section="quality",
        status=400 if errors else 200,
    )


@studio_view(Action.VIEW)
def category_rubric(request: HttpRequest, slug: str) -> HttpResponse:
    category = get_category_for_org(org=request.principal.org, slug=slug)
    rubric = CategoryRubric.objects.filter(category=category).first()
    errors: dict[str, str] = {}
    items = rubric.questions if rubric else []
    threshold: Any = rubric.pass_threshold if rubric else DEFAULT_PASS_THRESHOLD
    if request.method == "POST":
        if not request.principal.can(Action.MANAGE_MODELS):
            return refused(request, Action.MANAGE_MODELS)
        items = _posted_rubric(request.POST)
        threshold = _number(request.POST, "pass_threshold", float)
        try:
            quality_services.category_rubric_update(
                actor=request.principal,
                category=category,
                questions=items,
                pass_threshold=threshold,
            )
        except ValidationError as exc:
            errors = field_messages(exc)
        else:
            messages.success(request, "Rubric saved.")
            return redirect("studio:category_rubric", slug=slug)
    return render_page(
        request,
        "studio/quality/category_rubric.html",
        _form_context(
            items,
            category=category,
            pass_threshold=threshold,
            errors=errors,
            can_edit=request.principal.can(Action.MANAGE_MODELS),
        ),
        section="models",
        status=400 if errors else 200,
    )


@studio_view(Action.VIEW)
def quality_settings(request: HttpRequest) -> HttpResponse:
    row = quality_settings_for(request.principal.org)
    if request.method == "POST":
        if not request.principal.can(Action.MANAGE_MODELS):
            return refused(request, Action.MANAGE_MODELS)
        changes = {name: request.POST.get(name) == "on" for name, _, _ in SETTING_LABELS}
        quality_services.quality_settings_update(actor=request.principal, changes=changes)
        messages.success(request, "Quality settings saved.")
        return redirect("studio:quality_settings")
    from django.conf import settings

    options = [
        {
            "name": name,
            "label": label,
            "enabled": getattr(row, name),
            "configured": bool(getattr(settings, setting)),
            "setting": setting,
        }
        for name, label, setting in SETTING_LABELS
    ]
    return render_page(
        request,
        "studio/quality/settings.html",
        {"options": options, "can_edit": request.principal.can(Action.MANAGE_MODELS)},
        section="quality",
    )
