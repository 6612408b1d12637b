"""Serializers for the tenancy endpoints."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from ..models import MAX_API_KEY_LIFETIME_DAYS, ApiKey, AuditEvent, Organization, Team
from ..roles import Action
from .base import ResponseModelSerializer, StrictSerializer


class OrganizationSerializer(ResponseModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "slug", "name", "default_model", "api_key_max_lifetime_days", "created_at"]


class OrganizationSettingsSerializer(StrictSerializer):
    api_key_max_lifetime_days = serializers.IntegerField(
        min_value=1,
        max_value=MAX_API_KEY_LIFETIME_DAYS,
        allow_null=True,
        help_text="Longest a new API key may live, in days; null for no limit. When set, every "
        "new key needs an `expires_at` within it.",
    )


class TeamSerializer(ResponseModelSerializer):
    class Meta:
        model = Team
        fields = ["id", "name", "slug", "created_at"]


class TeamCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    slug = serializers.SlugField(max_length=80)


class ApiKeySerializer(ResponseModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    created_by = serializers.CharField(
        source="created_by.username", read_only=True, default=None, allow_null=True
    )
    active = serializers.SerializerMethodField()

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "team",
            "scopes",
            "created_by",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "active",
        ]

    def get_active(self, obj: ApiKey) -> bool:
        return obj.is_active()


class ApiKeyCreatedSerializer(ApiKeySerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown once; store it now.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "secret"]


class ApiKeyCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=120)
    team = serializers.IntegerField(required=False, help_text="Team id; defaults to your team.")
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=Action.choices), required=False, allow_empty=False
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class AuditEventSerializer(ResponseModelSerializer):
    actor = serializers.SerializerMethodField()

    class Meta:
        model = AuditEvent
        fields = ["id", "at", "verb", "object_type", "object_id", "actor", "before", "after"]

    def get_actor(self, obj: AuditEvent) -> dict[str, Any] | None:
        if obj.actor_api_key_id:
            return {"type": "api_key", "prefix": obj.actor_api_key.prefix}
        if obj.actor_user_id:
            return {"type": "user", "username": obj.actor_user.username}
        return None


class MeSerializer(serializers.Serializer):
    organization = serializers.DictField()
    team = serializers.DictField(allow_null=True)
    user = serializers.CharField(allow_null=True)
    api_key = serializers.CharField(allow_null=True)
    role = serializers.CharField(allow_null=True)
    actions = serializers.ListField(child=serializers.CharField())
