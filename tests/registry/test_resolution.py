"""How a generation request's ``model`` / ``category`` resolves to a base and a version."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from models_registry import services
from models_registry.models import BaseModel, BuildStatus
from models_registry.selectors import resolve_model_for_generation

pytestmark = pytest.mark.django_db


def _error(field: str, **kwargs: object) -> str:
    with pytest.raises(ValidationError) as excinfo:
        resolve_model_for_generation(**kwargs)
    assert field in excinfo.value.message_dict, excinfo.value.message_dict
    return " ".join(excinfo.value.message_dict[field])


def test_neither_model_nor_category_uses_the_org_default(owner, tiny_base_model):
    resolved = resolve_model_for_generation(org=owner.org)
    assert resolved.base == tiny_base_model
    assert resolved.version is None and resolved.category is None


def test_default_model_may_name_a_version(owner, category_factory, version_factory):
    version = version_factory(owner.principal, category_factory(owner.principal))
    owner.org.default_model = f"version:{version.pk}"
    resolved = resolve_model_for_generation(org=owner.org)
    assert resolved.version == version


def test_category_without_production_serves_its_base_model(owner, category_factory):
    category = category_factory(owner.principal)
    resolved = resolve_model_for_generation(org=owner.org, category="produce")
    assert (resolved.base.name, resolved.version, resolved.category) == ("tiny", None, category)


def test_category_with_neither_alias_nor_base_is_a_clear_error(owner, category_factory):
    category_factory(owner.principal, base_model=None)
    message = _error("category", org=owner.org, category="produce")
    assert "no production version and no base model" in message


def test_promoted_version_is_what_the_category_resolves_to(
    owner, category_factory, version_factory
):
    category = category_factory(owner.principal)
    version = version_factory(owner.principal, category)
    services.alias_promote(actor=owner.principal, category=category, version=version)
    resolved = resolve_model_for_generation(org=owner.org, category="produce")
    assert resolved.version == version and resolved.base.name == "tiny"


def test_model_by_version_id_and_by_base_name(owner, category_factory, version_factory):
    version = version_factory(owner.principal, category_factory(owner.principal))
    assert resolve_model_for_generation(org=owner.org, model=str(version.pk)).version == version
    assert resolve_model_for_generation(org=owner.org, model="tiny").version is None


def test_unknown_names_are_errors_naming_the_field(owner, tiny_base_model):
    assert "Unknown model 'nope'" in _error("model", org=owner.org, model="nope")
    assert "No model version 999999" in _error("model", org=owner.org, model="999999")
    assert "No category 'nope'" in _error("category", org=owner.org, category="nope")


def test_another_orgs_version_and_category_look_unknown(
    owner, outsider, category_factory, version_factory
):
    theirs = category_factory(outsider.principal, slug="secret")
    their_version = version_factory(outsider.principal, theirs)
    assert f"No model version {their_version.pk}" in _error(
        "model", org=owner.org, model=str(their_version.pk)
    )
    assert "No category 'secret'" in _error("category", org=owner.org, category="secret")


def test_version_must_belong_to_the_named_category(owner, category_factory, version_factory):
    produce = category_factory(owner.principal)
    category_factory(owner.principal, slug="bakery")
    version = version_factory(owner.principal, produce)
    message = _error("model", org=owner.org, model=str(version.pk), category="bakery")
    assert "belongs to category 'produce'" in message


def test_building_and_failed_base_models_are_refused_with_their_state(owner, tiny_base_model):
    BaseModel.objects.create(
        name="shapes",
        family="tiny",
        status=BuildStatus.BUILDING,
        build_progress={"stage": "unet", "step": 300, "total": 1000},
    )
    message = _error("model", org=owner.org, model="shapes")
    assert "still building (stage unet, step 300/1000)" in message
    BaseModel.objects.filter(name="shapes").update(
        status=BuildStatus.FAILED, build_progress={"error": "out of memory"}
    )
    assert "failed to build: out of memory" in _error("model", org=owner.org, model="shapes")


def test_a_broken_default_says_how_to_fix_it(owner, tiny_base_model):
    owner.org.default_model = "gone"
    message = _error("model", org=owner.org)
    assert "default model 'gone'" in message and "ask an admin" in message
