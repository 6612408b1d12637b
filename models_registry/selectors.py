"""Reads of the model registry, tenant-scoped, and the rule that turns a request's ``model`` /
``category`` into the base pipeline and (optionally) the version to serve."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet
from django.http import Http404

from tenants.models import Organization
from tenants.selectors import get_for_org

from .models import (
    Alias,
    AliasHistory,
    AliasName,
    BaseModel,
    BuildStatus,
    Category,
    ModelVersion,
)

VERSION_PREFIX = "version:"


@dataclass(frozen=True)
class ResolvedModel:
    """What a generation runs on: a base pipeline, plus a version (full or LoRA) if one applies."""

    base: BaseModel
    version: ModelVersion | None
    category: Category | None


# --- base models (platform-wide) ----------------------------------------------------------------


def base_model_list() -> QuerySet[BaseModel]:
    return BaseModel.objects.all()


def get_base_model(*, name: str) -> BaseModel:
    try:
        return BaseModel.objects.get(name=name)
    except BaseModel.DoesNotExist:
        raise Http404(f"No base model named {name!r}.") from None


# --- categories, versions, aliases ---------------------------------------------------------------


def category_list_for_org(*, org: Organization) -> QuerySet[Category]:
    return (
        Category.objects.filter(organization=org)
        .select_related("base_model")
        .prefetch_related("aliases")
    )


def category_overview_for_org(*, org: Organization) -> QuerySet[Category]:
    """Categories with their aliases and ``version_count`` (the studio's models page)."""
    return category_list_for_org(org=org).annotate(version_count=Count("versions"))


def get_category_for_org(*, org: Organization, slug: str) -> Category:
    return get_for_org(category_list_for_org(org=org), org=org, slug=slug)


def model_version_list_for_org(*, org: Organization) -> QuerySet[ModelVersion]:
    return (
        ModelVersion.objects.filter(organization=org)
        .select_related("category", "base", "created_by")
        .prefetch_related("aliases")
    )


def get_model_version_for_org(*, org: Organization, version_id: int | str) -> ModelVersion:
    return get_for_org(model_version_list_for_org(org=org), org=org, pk=version_id)


def version_lineage(version: ModelVersion, *, limit: int = 50) -> list[ModelVersion]:
    """Ancestors of ``version`` (parent first), stopping at a cycle or another organization."""
    chain: list[ModelVersion] = []
    seen = {version.pk}
    current = version.parent
    while current is not None and len(chain) < limit:
        if current.pk in seen or current.organization_id != version.organization_id:
            break
        chain.append(current)
        seen.add(current.pk)
        current = current.parent
    return chain


def alias_version(*, category: Category, alias: str = AliasName.PRODUCTION) -> ModelVersion | None:
    row = Alias.objects.filter(category=category, name=alias).select_related("version").first()
    return row.version if row else None


def alias_history_for_category(*, category: Category) -> QuerySet[AliasHistory]:
    return AliasHistory.objects.filter(category=category).select_related(
        "actor_user", "actor_api_key", "from_version", "to_version"
    )


# --- resolution for a generation ----------------------------------------------------------------


def _require_ready(base: BaseModel, *, field: str) -> None:
    if base.status == BuildStatus.READY:
        return
    if base.status == BuildStatus.BUILDING:
        progress = base.build_progress or {}
        where = ""
        if progress.get("stage"):
            where = f" (stage {progress['stage']}, step {progress.get('step', 0)}"
            where += f"/{progress.get('total', '?')})"
        message = (
            f"Base model '{base.name}' is still building{where}; try again in a few minutes "
            "or use another model."
        )
    else:
        error = (base.build_progress or {}).get("error", "")
        message = (
            f"Base model '{base.name}' failed to build{': ' + error if error else ''}; "
            "use another model or ask an operator to rebuild it."
        )
    raise ValidationError({field: message})


def _version_for_org(*, org: Organization, version_id: str, field: str) -> ModelVersion:
    try:
        return get_model_version_for_org(org=org, version_id=int(version_id))
    except (Http404, ValueError):
        raise ValidationError(
            {
                field: f"No model version {version_id} in this organization; list them at "
                "/api/v1/model-versions."
            }
        ) from None


def _resolve_model_name(*, org: Organization, model: str, field: str) -> ResolvedModel:
    model = model.strip()
    if model.startswith(VERSION_PREFIX) or model.isdigit():
        version = _version_for_org(
            org=org, version_id=model.removeprefix(VERSION_PREFIX), field=field
        )
        _require_ready(version.base, field=field)
        return ResolvedModel(base=version.base, version=version, category=version.category)
    base = BaseModel.objects.filter(name=model).first()
    if base is None:
        names = ", ".join(base_model_list().values_list("name", flat=True)) or "none registered"
        raise ValidationError(
            {
                field: f"Unknown model '{model}': use a base model name ({names}) or a model "
                "version id."
            }
        )
    _require_ready(base, field=field)
    return ResolvedModel(base=base, version=None, category=None)


def _resolve_category(*, org: Organization, slug: str) -> ResolvedModel:
    category = _resolve_category_row(org=org, slug=slug)
    version = alias_version(category=category)
    if version is not None:
        _require_ready(version.base, field="category")
        return ResolvedModel(base=version.base, version=version, category=category)
    if category.base_model is None:
        raise ValidationError(
            {
                "category": f"Category '{slug}' has no production version and no base model; "
                "promote a version or set the category's base model."
            }
        )
    _require_ready(category.base_model, field="category")
    return ResolvedModel(base=category.base_model, version=None, category=category)


def resolve_model_for_generation(
    *, org: Organization, model: str | None = None, category: str | None = None
) -> ResolvedModel:
    """Resolve what a generation request should run on.

    ``model``: a base-model name or a model-version id (digits, or ``version:<id>``) of ``org``.
    ``category``: a category slug of ``org`` → its ``production`` version, else its base model.
    Both: the model is used, and must belong to that category if it is a version.
    Neither: ``org.default_model``. Errors are ``ValidationError`` keyed by the field to fix;
    another organization's version or category is reported exactly like an unknown one.
    """
    if model:
        resolved = _resolve_model_name(org=org, model=str(model), field="model")
        if not category:
            return resolved
        by_category = _resolve_category_row(org=org, slug=category)
        if resolved.version is not None and resolved.version.category_id != by_category.pk:
            raise ValidationError(
                {
                    "model": f"Model version {resolved.version.pk} belongs to category "
                    f"'{resolved.version.category.slug}', not '{category}'."
                }
            )
        return ResolvedModel(base=resolved.base, version=resolved.version, category=by_category)
    if category:
        return _resolve_category(org=org, slug=category)
    default = (org.default_model or "").strip()
    if not default:
        raise ValidationError(
            {"model": "This organization has no default model; name a model or a category."}
        )
    try:
        return _resolve_model_name(org=org, model=default, field="model")
    except ValidationError as exc:
        detail = "; ".join(exc.message_dict.get("model", exc.messages))
        raise ValidationError(
            {
                "model": f"The organization's default model '{default}' cannot be used ({detail}). "
                "Name a model or a category, or ask an admin to change the default."
            }
        ) from None


def _resolve_category_row(*, org: Organization, slug: str) -> Category:
    try:
        return get_category_for_org(org=org, slug=slug)
    except Http404:
        raise ValidationError(
            {
                "category": f"No category '{slug}' in this organization; list them at "
                "/api/v1/categories."
            }
        ) from None
