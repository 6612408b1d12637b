"""The registry API: base models, categories, versions, promote / rollback / alias history."""

from __future__ import annotations

import pytest

from models_registry.models import BaseModel, ModelVersion
from models_registry.selectors import resolve_model_for_generation
from tenants.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def produce(owner, category_factory):  # type: ignore[no-untyped-def]
    return category_factory(owner.principal, trigger_token="sks")


@pytest.fixture
def two_versions(owner, produce, version_factory):  # type: ignore[no-untyped-def]
    return (
        version_factory(owner.principal, produce, label="v1"),
        version_factory(owner.principal, produce, label="v2"),
    )


def test_members_list_and_retrieve_base_models(persona, client_for, tiny_base_model):
    client = client_for(persona("viewer"))
    names = [b["name"] for b in client.get("/api/v1/base-models").json()]
    assert "tiny" in names
    body = client.get("/api/v1/base-models/tiny").json()
    assert body["family"] == "tiny" and body["status"] == "ready"
    assert body["default_params"]["native_size"] == 64


def test_admin_creates_updates_and_deletes_a_category(persona, client_for, tiny_base_model):
    client = client_for(persona("admin"))
    created = client.post(
        "/api/v1/categories",
        {"slug": "bakery", "name": "Bakery", "trigger_token": "bkry", "base_model": "tiny"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert created.json()["aliases"] == {"production": None, "staging": None}
    patched = client.patch("/api/v1/categories/bakery", {"name": "Breads"}, format="json")
    assert patched.json()["name"] == "Breads"
    assert AuditEvent.objects.filter(verb="category.updated").count() == 1
    assert client.delete("/api/v1/categories/bakery").status_code == 204
    assert client.get("/api/v1/categories/bakery").status_code == 404


def test_category_slug_cannot_be_changed_and_unknown_fields_are_refused(owner, client_for, produce):
    client = client_for(owner)
    response = client.patch("/api/v1/categories/produce", {"slug": "x"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"slug": "Unknown field."}


def test_editor_cannot_manage_categories_or_promote(persona, client_for, produce, two_versions):
    client = client_for(persona("editor"))
    assert client.get("/api/v1/categories/produce").status_code == 200
    assert (
        client.post("/api/v1/categories", {"slug": "a", "name": "A"}, format="json").status_code
        == 403
    )
    response = client.post(
        "/api/v1/categories/produce/promote", {"version": two_versions[0].pk}, format="json"
    )
    assert response.status_code == 403
    assert "manage_models" in response.json()["error"]["message"]


def test_promote_then_rollback_moves_resolution_and_records_history(
    owner, persona, client_for, produce, two_versions
):
    v1, v2 = two_versions
    admin = persona("admin")
    client = client_for(admin)
    for version in (v1, v2):
        response = client.post(
            "/api/v1/categories/produce/promote", {"version": version.pk}, format="json"
        )
        assert response.status_code == 200, response.json()
    assert response.json()["aliases"]["production"] == v2.pk
    assert resolve_model_for_generation(org=owner.org, category="produce").version == v2
    v1.refresh_from_db()
    assert v1.status == "archived"

    response = client.post("/api/v1/categories/produce/rollback", {}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["aliases"]["production"] == v1.pk
    assert resolve_model_for_generation(org=owner.org, category="produce").version == v1
    assert ModelVersion.objects.get(pk=v2.pk).status == "archived"
    assert ModelVersion.objects.get(pk=v1.pk).status == "production"

    history = client.get("/api/v1/categories/produce/alias-history").json()["results"]
    assert [(h["action"], h["to_version"]["id"]) for h in history] == [
        ("rollback", v1.pk),
        ("promote", v2.pk),
        ("promote", v1.pk),
    ]
    assert history[1]["from_version"]["id"] == v1.pk
    assert all(
        h["actor"]
        == {"type": "api_key", "prefix": admin.api_key.split("_")[1], "name": "admin key"}
        for h in history
    )
    assert all(h["at"] for h in history)
    verbs = list(AuditEvent.objects.filter(organization=owner.org).values_list("verb", flat=True))
    assert verbs.count("alias.promoted") == 2 and verbs.count("alias.rolled_back") == 1


def test_rollback_walks_back_one_promotion_at_a_time(owner, client_for, produce, version_factory):
    client = client_for(owner, session=True)
    versions = [version_factory(owner.principal, produce) for _ in range(3)]
    for v in versions:
        client.post("/api/v1/categories/produce/promote", {"version": v.pk}, format="json")
    seen = []
    for _ in range(2):
        seen.append(
            client.post("/api/v1/categories/produce/rollback", {}, format="json").json()["aliases"][
                "production"
            ]
        )
    assert seen == [versions[1].pk, versions[0].pk]
    refused = client.post("/api/v1/categories/produce/rollback", {}, format="json")
    assert refused.status_code == 400
    assert "Nothing to roll back to" in refused.json()["error"]["message"]
    history = client.get("/api/v1/categories/produce/alias-history").json()["results"]
    assert history[0]["actor"] == {"type": "user", "username": owner.user.username}


def test_staging_alias_is_separate_from_production(owner, client_for, produce, two_versions):
    v1, v2 = two_versions
    client = client_for(owner)
    client.post("/api/v1/categories/produce/promote", {"version": v1.pk}, format="json")
    body = client.post(
        "/api/v1/categories/produce/promote", {"version": v2.pk, "alias": "staging"}, format="json"
    ).json()
    assert body["aliases"] == {"production": v1.pk, "staging": v2.pk}
    assert ModelVersion.objects.get(pk=v2.pk).status == "staging"
    staging = client.get("/api/v1/categories/produce/alias-history?alias=staging").json()
    assert [h["to_version"]["id"] for h in staging["results"]] == [v2.pk]


def test_promoting_a_version_of_another_base_family_is_refused(
    owner, client_for, produce, two_versions, version_factory
):
    client = client_for(owner)
    client.post(
        "/api/v1/categories/produce/promote", {"version": two_versions[0].pk}, format="json"
    )
    sd15 = BaseModel.objects.create(name="sd15-test", family="sd15", sha256="0" * 64)
    other = version_factory(owner.principal, produce, base=sd15)
    response = client.post(
        "/api/v1/categories/produce/promote", {"version": other.pk}, format="json"
    )
    assert response.status_code == 400
    assert "is a sd15 model but 'produce' serves tiny" in response.json()["error"]["message"]


def test_promoting_another_orgs_version_is_refused_like_a_missing_one(
    owner, outsider, client_for, produce, category_factory, version_factory
):
    theirs = version_factory(outsider.principal, category_factory(outsider.principal))
    response = client_for(owner).post(
        "/api/v1/categories/produce/promote", {"version": theirs.pk}, format="json"
    )
    assert response.status_code == 404
    assert not produce.aliases.exists()


def test_outsider_gets_404_for_every_registry_object_of_another_org(
    owner, outsider, client_for, produce, two_versions
):
    client_for(owner).post(
        "/api/v1/categories/produce/promote", {"version": two_versions[0].pk}, format="json"
    )
    client = client_for(outsider)
    version_id = two_versions[0].pk
    for method, url, body in [
        ("get", "/api/v1/categories/produce", None),
        ("patch", "/api/v1/categories/produce", {"name": "x"}),
        ("delete", "/api/v1/categories/produce", None),
        ("post", "/api/v1/categories/produce/promote", {"version": version_id}),
        ("post", "/api/v1/categories/produce/rollback", {}),
        ("get", "/api/v1/categories/produce/alias-history", None),
        ("get", f"/api/v1/model-versions/{version_id}", None),
    ]:
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code == 404, (method, url, response.status_code)
        assert response.json()["error"]["code"] == "not_found"
    assert client.get("/api/v1/categories").json() == []
    assert client.get("/api/v1/model-versions").json()["results"] == []


def test_versions_filter_by_category_and_status_and_show_lineage(
    owner, client_for, produce, category_factory, version_factory
):
    parent = version_factory(owner.principal, produce, label="first")
    child = version_factory(
        owner.principal, produce, parent=parent, label="second", metrics={"clip_score": 0.31}
    )
    bakery = category_factory(owner.principal, slug="bakery")
    version_factory(owner.principal, bakery)
    client = client_for(owner)
    client.post("/api/v1/categories/produce/promote", {"version": child.pk}, format="json")

    listed = client.get("/api/v1/model-versions?category=produce").json()["results"]
    assert [v["id"] for v in listed] == [child.pk, parent.pk]
    production = client.get("/api/v1/model-versions?status=production").json()["results"]
    assert [v["id"] for v in production] == [child.pk]

    detail = client.get(f"/api/v1/model-versions/{child.pk}").json()
    assert detail["metrics"] == {"clip_score": 0.31}
    assert detail["aliases"] == ["production"] and detail["category"] == "produce"
    assert [a["id"] for a in detail["lineage"]] == [parent.pk]
    assert detail["sha256"] == child.sha256 and detail["kind"] == "lora"


def test_category_with_versions_cannot_be_deleted(owner, client_for, produce, two_versions):
    response = client_for(owner).delete("/api/v1/categories/produce")
    assert response.status_code == 400
    assert "has model versions" in response.json()["error"]["message"]


def test_services_refuse_another_orgs_version_even_when_called_directly(
    owner, outsider, produce, category_factory, version_factory
):
    from django.core.exceptions import ValidationError

    from models_registry import services

    theirs = version_factory(outsider.principal, category_factory(outsider.principal))
    with pytest.raises(ValidationError, match="No such model version in this organization"):
        services.alias_promote(actor=owner.principal, category=produce, version=theirs)
    with pytest.raises(ValidationError, match="No such category"):
        services.alias_rollback(actor=outsider.principal, category=produce)
