"""Writes of the model registry: categories, base models, model versions, and alias moves
(promote / rollback) with their append-only history and audit events.

Uploads happen before the database transaction (they can take minutes for a real checkpoint);
the row that points to the artifact is written in one transaction afterwards. Artifacts are
content-addressed, so an upload whose row never gets written costs storage, not correctness.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from tenants.audit import AuditVerb
from tenants.principal import Principal
from tenants.roles import Action
from tenants.services import audit_event_record, require

from .artifacts import artifact_upload
from .models import (
    Alias,
    AliasHistory,
    AliasName,
    BaseModel,
    BuildStatus,
    Category,
    Family,
    ModelVersion,
    VersionKind,
    VersionStatus,
)
from .validation import check_lora_file, check_pipeline_folder, is_grounded_folder

CATEGORY_FIELDS = ("name", "trigger_token", "base_model", "default_template", "auto_promote")


def _category_snapshot(category: Category) -> dict[str, Any]:
    return {
        "slug": category.slug,
        "name": category.name,
        "trigger_token": category.trigger_token,
        "base_model": category.base_model.name if category.base_model else None,
        "default_template": category.default_template,
        "auto_promote": category.auto_promote,
    }


def _check_base_usable(base: BaseModel | None, *, field: str) -> None:
    if base is not None and base.status != BuildStatus.READY:
        raise ValidationError(
            {field: f"Base model '{base.name}' is {base.status}, not ready; choose a ready one."}
        )


# --- categories ---------------------------------------------------------------------------------


@transaction.atomic
def category_create(
    *,
    actor: Principal,
    slug: str,
    name: str,
    trigger_token: str = "",
    base_model: BaseModel | None = None,
    default_template: str = "",
    auto_promote: bool = False,
) -> Category:
    require(actor, Action.MANAGE_MODELS)
    if Category.objects.filter(organization=actor.org, slug=slug).exists():
        raise ValidationError({"slug": f"A category with slug '{slug}' already exists."})
    _check_base_usable(base_model, field="base_model")
    category = Category.objects.create(
        organization=actor.org,
        slug=slug,
        name=name,
        trigger_token=trigger_token,
        base_model=base_model,
        default_template=default_template,
        auto_promote=auto_promote,
    )
    audit_event_record(
        org=actor.org,
        actor=actor,
        verb=AuditVerb.CATEGORY_CREATED,
        obj=category,
        after=_category_snapshot(category),
    )
    return category


@transaction.atomic
def category_update(*, actor: Principal, category: Category, **changes: Any) -> Category:
    require(actor, Action.MANAGE_MODELS)
    _same_org(actor, category)
    unknown = sorted(set(changes) - set(CATEGORY_FIELDS))
    if unknown:
        raise ValidationError(dict.fromkeys(unknown, "This field cannot be changed."))
    if "base_model" in changes:
        _check_base_usable(changes["base_model"], field="base_model")
    before = _category_snapshot(category)
    for field, value in changes.items():
        setattr(category, field, value)
    category.save(update_fields=list(changes) or None)
    after = _category_snapshot(category)
    if after != before:
        audit_event_record(
            org=actor.org,
            actor=actor,
            verb=AuditVerb.CATEGORY_UPDATED,
            obj=category,
            before=before,
            after=after,
        )
    return category


@transaction.atomic
def category_delete(*, actor: Principal, category: Category) -> None:
    require(actor, Action.MANAGE_MODELS)
    _same_org(actor, category)
    if category.versions.exists():
        raise ValidationError(
            {
                "category": f"Category '{category.slug}' has model versions and cannot be "
                "deleted (their history must stay traceable); rename it instead."
            }
        )
    audit_event_record(
        org=actor.org,
        actor=actor,
        verb=AuditVerb.CATEGORY_DELETED,
        obj=category,
        before=_category_snapshot(category),
    )
    category.delete()


def _same_org(actor: Principal, category: Category) -> None:
    if category.organization_id != actor.org.pk:
        raise ValidationError({"category": "No such category in this organization."})


# --- base models --------------------------------------------------------------------------------


def _check_source(*, kind: str, family: str, source_path: Path) -> Path:
    if kind == VersionKind.LORA:
        return check_lora_file(source_path)
    if kind == VersionKind.FULL:
        check_pipeline_folder(source_path, family=family)
        return Path(source_path)
    raise ValidationError({"kind": f"Unknown kind '{kind}'; use one of {VersionKind.values}."})


def base_model_register(
    *,
    name: str,
    family: str,
    source_path: Path,
    default_params: dict[str, Any],
    description: str = "",
) -> BaseModel:
    """Upload a diffusers pipeline folder and register (or re-point) the base model ``name``."""
    if family not in Family.values:
        raise ValidationError({"family": f"Unknown family '{family}'; use one of {Family.values}."})
    check_pipeline_folder(source_path, family=family)
    grounded = is_grounded_folder(source_path)
    stored = artifact_upload(source=Path(source_path))
    with transaction.atomic():
        base, _created = BaseModel.objects.select_for_update().get_or_create(
            name=name, defaults={"family": family}
        )
        if base.family != family and base.versions.exists():
            raise ValidationError(
                {
                    "family": f"Base model '{name}' is registered as {base.family} and has "
                    "versions; register the new checkpoint under another name."
                }
            )
        base.family = family
        base.description = description or base.description
        base.artifact_uri, base.sha256, base.size_bytes = stored.uri, stored.sha256, stored.size
        base.default_params = dict(default_params)
        base.grounded = grounded
        base.status = BuildStatus.READY
        base.build_progress = {**(base.build_progress or {}), "stage": "ready", "error": ""}
        base.save()
    return base


def base_model_mark_building(*, name: str, family: str, description: str = "") -> BaseModel:
    """Create the row of a built-in model that is being built, so people can follow it."""
    queued = {"stage": "queued", "step": 0, "total": 0, "updated_at": timezone.now().isoformat()}
    with transaction.atomic():
        base, created = BaseModel.objects.select_for_update().get_or_create(
            name=name,
            defaults={
                "family": family,
                "description": description,
                "status": BuildStatus.BUILDING,
                "build_progress": queued,
            },
        )
        if not created and base.status != BuildStatus.READY:
            base.status = BuildStatus.BUILDING
            base.build_progress = queued
            base.save(update_fields=["status", "build_progress"])
    return base


def base_model_report_progress(
    *, name: str, stage: str, step: int, total: int, metrics: dict[str, float] | None = None
) -> None:
    """Record build progress of a base model (one UPDATE, outside any long transaction)."""
    progress = {
        "stage": stage,
        "step": step,
        "total": total,
        "metrics": {k: round(float(v), 6) for k, v in (metrics or {}).items()},
        "updated_at": timezone.now().isoformat(),
    }
    BaseModel.objects.filter(name=name).exclude(status=BuildStatus.READY).update(
        build_progress=progress
    )


def base_model_mark_failed(*, name: str, error: str) -> None:
    BaseModel.objects.filter(name=name).exclude(status=BuildStatus.READY).update(
        status=BuildStatus.FAILED,
        build_progress={
            "stage": "failed",
            "error": error[:2000],
            "updated_at": timezone.now().isoformat(),
        },
    )


# --- model versions -----------------------------------------------------------------------------


def model_version_register(
    *,
    actor: Principal | None,
    category: Category,
    base: BaseModel,
    kind: str,
    source_path: Path,
    parent: ModelVersion | None = None,
    metrics: dict[str, Any] | None = None,
    training_job_id: Any = None,
    label: str = "",
) -> ModelVersion:
    """Upload ``source_path`` (a pipeline folder for ``full``, LoRA weights for ``lora``) and
    register it as a ``candidate`` version of ``category``. ``actor`` None means the system
    (a training task acting for the job's creator)."""
    org = category.organization
    if actor is not None:
        if not (actor.can(Action.MANAGE_MODELS) or actor.can(Action.TRAIN)):
            require(actor, Action.MANAGE_MODELS)
        _same_org(actor, category)
    _check_base_usable(base, field="base")
    if parent is not None and parent.organization_id != org.pk:
        raise ValidationError({"parent": "No such model version in this organization."})
    source = _check_source(kind=kind, family=base.family, source_path=Path(source_path))
    stored = artifact_upload(source=source)
    with transaction.atomic():
        version = ModelVersion.objects.create(
            organization=org,
            category=category,
            base=base,
            kind=kind,
            label=label,
            artifact_uri=stored.uri,
            sha256=stored.sha256,
            size_bytes=stored.size,
            parent=parent,
            training_job_id=training_job_id,
            metrics=dict(metrics or {}),
            created_by=actor.user if actor else None,
        )
        audit_event_record(
            org=org,
            actor=actor,
            verb=AuditVerb.MODEL_VERSION_REGISTERED,
            obj=version,
            after={
                "category": category.slug,
                "base": base.name,
                "kind": kind,
                "sha256": stored.sha256,
                "label": label,
                "training_job_id": str(training_job_id) if training_job_id else None,
            },
        )
    return version


def _refresh_status(version: ModelVersion | None) -> None:
    """A version's status follows the aliases that point at it (archived once it had one)."""
    if version is None:
        return
    names = set(Alias.objects.filter(version=version).values_list("name", flat=True))
    if AliasName.PRODUCTION in names:
        status = VersionStatus.PRODUCTION
    elif AliasName.STAGING in names:
        status = VersionStatus.STAGING
    elif version.status == VersionStatus.CANDIDATE:
        status = VersionStatus.CANDIDATE
    else:
        status = VersionStatus.ARCHIVED
    if status != version.status:
        version.status = status
        version.save(update_fields=["status"])


def _check_alias_name(alias: str) -> None:
    if alias not in AliasName.values:
        raise ValidationError({"alias": f"Unknown alias '{alias}'; use one of {AliasName.values}."})


def _move_alias(
    *,
    actor: Principal,
    category: Category,
    alias: str,
    row: Alias | None,
    to_version: ModelVersion,
    action: str,
) -> Alias:
    from_version = row.version if row else None
    now = timezone.now()
    if row is None:
        row = Alias.objects.create(
            category=category, name=alias, version=to_version, updated_at=now
        )
    else:
        row.version, row.updated_at = to_version, now
        row.save(update_fields=["version", "updated_at"])
    AliasHistory.objects.create(
        organization=category.organization,
        category=category,
        alias_name=alias,
        action=action,
        from_version=from_version,
        to_version=to_version,
        actor_user=actor.user,
        actor_api_key=actor.api_key,
        at=now,
    )
    _refresh_status(from_version)
    _refresh_status(to_version)
    audit_event_record(
        org=actor.org,
        actor=actor,
        verb=AuditVerb.ALIAS_PROMOTED if action == "promote" else AuditVerb.ALIAS_ROLLED_BACK,
        obj=category,
        before={"alias": alias, "version": from_version.pk if from_version else None},
        after={"alias": alias, "version": to_version.pk},
    )
    return row


def _lock_aliases_of(category: Category) -> None:
    """Serialize alias moves of one category on its row. Locking the alias row alone is not
    enough: before a first promotion there is no row to lock, so two first promotions would
    both insert one and the second would fail on the unique constraint."""
    Category.objects.select_for_update().filter(pk=category.pk).values_list("pk").first()


def _serving_family(category: Category, row: Alias | None) -> str | None:
    if row is not None:
        return row.version.base.family
    if category.base_model is not None:
        return category.base_model.family
    return None


@transaction.atomic
def alias_promote(
    *,
    actor: Principal,
    category: Category,
    version: ModelVersion,
    alias: str = AliasName.PRODUCTION,
) -> Alias:
    """Point ``category``'s ``alias`` at ``version``; refused across organizations, categories
    and base families. Promoting the version already there changes nothing."""
    require(actor, Action.MANAGE_MODELS)
    _same_org(actor, category)
    _check_alias_name(alias)
    if version.organization_id != actor.org.pk:
        raise ValidationError({"version": "No such model version in this organization."})
    if version.category_id != category.pk:
        raise ValidationError(
            {
                "version": f"Model version {version.pk} belongs to category "
                f"'{version.category.slug}', not '{category.slug}'."
            }
        )
    _lock_aliases_of(category)
    row = Alias.objects.select_for_update().filter(category=category, name=alias).first()
    family = _serving_family(category, row)
    if family is not None and version.base.family != family:
        raise ValidationError(
            {
                "version": f"Model version {version.pk} is a {version.base.family} model but "
                f"'{category.slug}' serves {family}; promote a version of the same base family."
            }
        )
    _check_base_usable(version.base, field="version")
    if row is not None and row.version_id == version.pk:
        return row
    return _move_alias(
        actor=actor, category=category, alias=alias, row=row, to_version=version, action="promote"
    )


def alias_stack(*, category: Category, alias: str) -> list[int]:
    """Version ids the alias has served, replayed from history: promote pushes, rollback pops."""
    stack: list[int] = []
    entries = AliasHistory.objects.filter(category=category, alias_name=alias).order_by("at", "id")
    for action, to_id in entries.values_list("action", "to_version_id"):
        if action == "rollback" and stack:
            stack.pop()
        elif action == "promote":
            stack.append(to_id)
    return stack


@transaction.atomic
def alias_rollback(
    *, actor: Principal, category: Category, alias: str = AliasName.PRODUCTION
) -> Alias:
    """Move ``alias`` back to the version it served before the current one was promoted."""
    require(actor, Action.MANAGE_MODELS)
    _same_org(actor, category)
    _check_alias_name(alias)
    _lock_aliases_of(category)
    row = Alias.objects.select_for_update().filter(category=category, name=alias).first()
    if row is None:
        raise ValidationError(
            {"alias": f"Category '{category.slug}' has no {alias} version to roll back."}
        )
    stack = alias_stack(category=category, alias=alias)
    if len(stack) < 2 or stack[-1] != row.version_id:
        raise ValidationError(
            {
                "alias": f"Nothing to roll back to: {alias} of '{category.slug}' has no earlier "
                "version in its history. Promote a version instead."
            }
        )
    previous = ModelVersion.objects.get(pk=stack[-2])
    return _move_alias(
        actor=actor,
        category=category,
        alias=alias,
        row=row,
        to_version=previous,
        action="rollback",
    )
