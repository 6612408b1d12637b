"""Models pages: categories with their production and staging versions, one category's versions
side by side (candidate vs production), promote and roll back (admins, after a confirmation),
and the alias history."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from models_registry import selectors as registry
from models_registry import services as registry_services
from models_registry.models import AliasName, VersionStatus
from tenants.roles import Action

from ..access import render_page, studio_view
from ..errors import first_message


@studio_view(Action.VIEW)
def category_list(request: HttpRequest) -> HttpResponse:
    org = request.principal.org
    rows = []
    for category in registry.category_overview_for_org(org=org):
        aliases = {alias.name: alias for alias in category.aliases.all()}
        rows.append(
            {
                "category": category,
                "production": aliases.get(AliasName.PRODUCTION),
                "staging": aliases.get(AliasName.STAGING),
                "version_count": category.version_count,
            }
        )
    return render_page(
        request,
        "studio/models/category_list.html",
        {"rows": rows, "base_models": registry.base_model_list()},
        section="models",
    )


@studio_view(Action.VIEW)
def category_detail(request: HttpRequest, slug: str) -> HttpResponse:
    org = request.principal.org
    category = registry.get_category_for_org(org=org, slug=slug)
    versions = list(registry.model_version_list_for_org(org=org).filter(category=category))
    production = registry.alias_version(category=category, alias=AliasName.PRODUCTION)
    staging = registry.alias_version(category=category, alias=AliasName.STAGING)
    candidate = next(
        (v for v in versions if v.status in (VersionStatus.CANDIDATE, VersionStatus.STAGING)),
        None,
    )
    compare = staging or candidate
    metric_names = sorted(
        set((production.metrics if production else {}) or {})
        | set((compare.metrics if compare else {}) or {})
    )
    metric_names = [m for m in metric_names if m not in ("instance_sha256", "params")]
    return render_page(
        request,
        "studio/models/category_detail.html",
        {
            "category": category,
            "versions": versions,
            "production": production,
            "staging": staging,
            "compare": compare,
            "metric_names": metric_names,
            "history": registry.alias_history_for_category(category=category)[:50],
            "can_manage": request.principal.can(Action.MANAGE_MODELS),
            "alias_names": AliasName.choices,
        },
        section="models",
    )


@require_POST
@studio_view(Action.MANAGE_MODELS)
def promote(request: HttpRequest, slug: str) -> HttpResponse:
    org = request.principal.org
    category = registry.get_category_for_org(org=org, slug=slug)
    version = registry.get_model_version_for_org(
        org=org, version_id=request.POST.get("version", "")
    )
    alias = request.POST.get("alias", AliasName.PRODUCTION)
    try:
        registry_services.alias_promote(
            actor=request.principal, category=category, version=version, alias=alias
        )
    except ValidationError as exc:
        messages.error(request, f"Not promoted: {first_message(exc)}")
    else:
        messages.success(request, f"Version {version.pk} is now {alias} for {category.name}.")
    return redirect("studio:category_detail", slug=category.slug)


@require_POST
@studio_view(Action.MANAGE_MODELS)
def rollback(request: HttpRequest, slug: str) -> HttpResponse:
    org = request.principal.org
    category = registry.get_category_for_org(org=org, slug=slug)
    alias = request.POST.get("alias", AliasName.PRODUCTION)
    try:
        row = registry_services.alias_rollback(
            actor=request.principal, category=category, alias=alias
        )
    except ValidationError as exc:
        messages.error(request, f"Not rolled back: {first_message(exc)}")
    else:
        messages.success(
            request, f"{alias} of {category.name} is back on version {row.version_id}."
        )
    return redirect("studio:category_detail", slug=category.slug)
