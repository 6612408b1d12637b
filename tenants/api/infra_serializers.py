"""Serializers for usage, quotas and webhooks."""

from __future__ import annotations

from rest_framework import serializers

from ..models import Quota, WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint
from ..webhooks import WEBHOOK_EVENTS
from .base import ResponseModelSerializer, StrictSerializer

# --- Usage and quotas ----------------------------------------------------------------------------


class UsageBlockSerializer(serializers.Serializer):
    used = serializers.FloatField(help_text="Settled plus reserved (in-flight) usage.")
    settled = serializers.FloatField()
    reserved = serializers.FloatField()
    limit = serializers.FloatField(allow_null=True, help_text="null: unlimited.")
    remaining = serializers.FloatField(allow_null=True)
    period_start = serializers.DateTimeField()
    resets_at = serializers.DateTimeField()


class UsageScopeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    slug = serializers.CharField()
    images_today = UsageBlockSerializer()
    gpu_seconds_this_month = UsageBlockSerializer()


class TeamUsageSerializer(UsageScopeSerializer):
    name = serializers.CharField()


class UsageSerializer(serializers.Serializer):
    organization = UsageScopeSerializer()
    teams = TeamUsageSerializer(many=True)


class QuotaSerializer(ResponseModelSerializer):
    team = serializers.SerializerMethodField()

    class Meta:
        model = Quota
        fields = ["team", "images_per_day", "gpu_seconds_per_month", "updated_at"]

    def get_team(self, obj: Quota) -> dict | None:
        if obj.team_id is None:
            return None
        return {"id": obj.team.pk, "slug": obj.team.slug}


class QuotaSetSerializer(StrictSerializer):
    team = serializers.IntegerField(
        required=False, allow_null=True, help_text="Team id; omit or null for the org-wide limit."
    )
    images_per_day = serializers.IntegerField(
        min_value=0, allow_null=True, help_text="null: unlimited."
    )
    gpu_seconds_per_month = serializers.FloatField(
        min_value=0, allow_null=True, help_text="null: unlimited."
    )


# --- Webhooks ------------------------------------------------------------------------------------


class WebhookEndpointSerializer(ResponseModelSerializer):
    team = serializers.SerializerMethodField()
    created_by = serializers.CharField(
        source="created_by.username", read_only=True, default=None, allow_null=True
    )

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "team",
            "events",
            "active",
            "created_by",
            "created_at",
            "deactivated_at",
        ]

    def get_team(self, obj: WebhookEndpoint) -> dict | None:
        if obj.team_id is None:
            return None
        return {"id": obj.team.pk, "slug": obj.team.slug}


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(
        read_only=True, help_text="Signing secret (whsec_...). Shown once; store it now."
    )

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]


class WebhookEndpointCreateSerializer(StrictSerializer):
    url = serializers.CharField(max_length=2000, help_text="A public http(s) URL.")
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(WEBHOOK_EVENTS)), allow_empty=False
    )
    team = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text="Only this team's events; omit or null for the whole organization's.",
    )
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)


class WebhookDeliveryAttemptSerializer(ResponseModelSerializer):
    class Meta:
        model = WebhookDeliveryAttempt
        fields = ["number", "at", "status_code", "error", "duration_ms"]


class WebhookDeliverySerializer(ResponseModelSerializer):
    webhook = serializers.IntegerField(source="endpoint_id", read_only=True)
    attempt_log = WebhookDeliveryAttemptSerializer(source="log", many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "delivery_id",
            "webhook",
            "event",
            "status",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "created_at",
            "delivered_at",
            "payload",
            "attempt_log",
        ]
