"""Serializers for the model-registry endpoints."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from tenants.api.base import ResponseModelSerializer, StrictSerializer

from ..models import AliasHistory, AliasName, BaseModel, Category, ModelVersion
from ..selectors import version_lineage


def _actor(user: Any, api_key: Any) -> dict[str, Any] | None:
    if api_key is not None:
        return {"type": "api_key", "prefix": api_key.prefix, "name": api_key.name}
    if user is not None:
        return {"type": "user", "username": user.get_username()}
    return None


class BaseModelSerializer(ResponseModelSerializer):
    class Meta:
        model = BaseModel
        fields = [
            "id",
            "name",
            "family",
            "description",
            "grounded",
            "status",
            "build_progress",
            "default_params",
            "sha256",
            "size_bytes",
            "created_at",
        ]


class CategorySerializer(ResponseModelSerializer):
    base_model = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    aliases = serializers.SerializerMethodField()

    class Meta:
        model = Category
        fields = [
            "id",
            "slug",
            "name",
            "trigger_token",
            "base_model",
            "default_template",
            "auto_promote",
            "aliases",
            "created_at",
        ]

    def get_aliases(self, obj: Category) -> dict[str, int | None]:
        current = {a.name: a.version_id for a in obj.aliases.all()}
        return {name: current.get(name) for name in AliasName.values}


class CategoryCreateSerializer(StrictSerializer):
    slug = serializers.SlugField(max_length=80)
    name = serializers.CharField(max_length=200)
    trigger_token = serializers.CharField(max_length=40, required=False, allow_blank=True)
    base_model = serializers.SlugRelatedField(
        slug_field="name",
        queryset=BaseModel.objects.all(),
        required=False,
        allow_null=True,
        help_text="Name of the base model served before any version is promoted.",
    )
    default_template = serializers.CharField(max_length=80, required=False, allow_blank=True)
    auto_promote = serializers.BooleanField(
        required=False,
        help_text="Promote a fine-tuned candidate that beats production on the quality gate.",
    )


class CategoryUpdateSerializer(CategoryCreateSerializer):
    slug = None  # type: ignore[assignment]  # the slug is the category's address; it stays
    name = serializers.CharField(max_length=200, required=False)


class VersionRefSerializer(ResponseModelSerializer):
    class Meta:
        model = ModelVersion
        fields = ["id", "label", "kind", "status", "created_at"]


class ModelVersionSerializer(ResponseModelSerializer):
    category = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    base = serializers.SlugRelatedField(slug_field="name", read_only=True)
    family = serializers.CharField(source="base.family", read_only=True)
    aliases = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "category",
            "base",
            "family",
            "kind",
            "label",
            "status",
            "aliases",
            "sha256",
            "size_bytes",
            "parent",
            "training_job_id",
            "metrics",
            "created_by",
            "created_at",
        ]

    def get_aliases(self, obj: ModelVersion) -> list[str]:
        return sorted(a.name for a in obj.aliases.all())

    def get_created_by(self, obj: ModelVersion) -> str | None:
        return obj.created_by.get_username() if obj.created_by else None


class ModelVersionDetailSerializer(ModelVersionSerializer):
    lineage = serializers.SerializerMethodField(help_text="Ancestors, parent first.")

    class Meta(ModelVersionSerializer.Meta):
        fields = [*ModelVersionSerializer.Meta.fields, "artifact_uri", "lineage"]

    def get_lineage(self, obj: ModelVersion) -> list[dict[str, Any]]:
        return VersionRefSerializer(version_lineage(obj), many=True).data


class PromoteSerializer(StrictSerializer):
    version = serializers.IntegerField(help_text="Id of a model version of this category.")
    alias = serializers.ChoiceField(choices=AliasName.choices, default=AliasName.PRODUCTION)


class RollbackSerializer(StrictSerializer):
    alias = serializers.ChoiceField(choices=AliasName.choices, default=AliasName.PRODUCTION)


class AliasHistorySerializer(ResponseModelSerializer):
    alias = serializers.CharField(source="alias_name")
    from_version = VersionRefSerializer(allow_null=True)
    to_version = VersionRefSerializer(allow_null=True)
    actor = serializers.SerializerMethodField()

    class Meta:
        model = AliasHistory
        fields = ["id", "alias", "action", "from_version", "to_version", "actor", "at"]

    def get_actor(self, obj: AliasHistory) -> dict[str, Any] | None:
        return _actor(obj.actor_user, obj.actor_api_key)
