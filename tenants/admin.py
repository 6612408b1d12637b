"""Django admin for platform staff. API keys (never their secrets), the audit log, the usage
ledger, idempotency keys and webhooks are read-only here: changing them must go through services
(and the API), which validate, hash or sign, and write audit events. Quotas, memberships and an
organization's API-key lifetime cap are editable, and saving one calls its audited service
(``quota_set``, ``membership_set`` / ``membership_remove``,
``organization_api_key_max_lifetime_set``)."""

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import (
    ApiKey,
    AuditEvent,
    IdempotencyRecord,
    Membership,
    Organization,
    Quota,
    Team,
    UsageRecord,
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
)
from .principal import Principal
from .quotas import quota_set
from .roles import Role
from .services import membership_remove, membership_set, organization_api_key_max_lifetime_set


class ReadOnlyAdmin(admin.ModelAdmin):
    """Look, don't touch: for rows that only services may write. Shared by every app's admin."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class TeamInline(admin.TabularInline):
    model = Team
    extra = 0


def _staff_actor(request: HttpRequest, org: Organization) -> Principal:
    """Platform staff act on an organization with owner rights; services audit them by name."""
    return Principal(org=org, user=request.user, role=Role.OWNER)


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    """Create organizations with ``manage.py create_organization`` (owner, team and first key).
    The API keys' maximum lifetime saves through its audited service."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    list_display = ["name", "slug", "default_model", "api_key_max_lifetime_days", "created_at"]
    search_fields = ["name", "slug"]
    fields = ["name", "slug", "default_model", "api_key_max_lifetime_days", "created_at"]
    readonly_fields = ["created_at"]
    inlines = [TeamInline]

    def save_model(
        self, request: HttpRequest, obj: Organization, form: forms.ModelForm, change: bool
    ) -> None:
        if change and "api_key_max_lifetime_days" in form.changed_data:
            organization_api_key_max_lifetime_set(
                actor=_staff_actor(request, obj),
                api_key_max_lifetime_days=obj.api_key_max_lifetime_days,
            )
        super().save_model(request, obj, form, change)


class MembershipForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["organization", "user", "role", "teams"]

    def clean(self) -> dict[str, object]:
        cleaned = super().clean()
        org = cleaned.get("organization") or getattr(self.instance, "organization", None)
        teams = cleaned.get("teams") or []
        if org is not None and any(team.organization_id != org.pk for team in teams):
            self.add_error("teams", f"Choose only teams of {org}.")
        return cleaned


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    """Adding, changing and removing members goes through ``membership_set`` and
    ``membership_remove``, so every change is audited (as the staff user)."""

    form = MembershipForm
    list_display = ["user", "organization", "role"]
    list_filter = ["role", "organization"]

    def get_readonly_fields(self, request: HttpRequest, obj: Membership | None = None) -> list[str]:
        return ["organization", "user"] if obj is not None else []

    def save_model(
        self, request: HttpRequest, obj: Membership, form: forms.ModelForm, change: bool
    ) -> None:
        saved = membership_set(
            actor=_staff_actor(request, obj.organization),
            user=obj.user,
            role=obj.role,
            teams=list(form.cleaned_data.get("teams") or []),
        )
        obj.pk = saved.pk

    def save_related(
        self, request: HttpRequest, form: forms.ModelForm, formsets: list, change: bool
    ) -> None:
        # membership_set already set the teams; the form's own m2m save would do it unaudited.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        membership_remove(actor=_staff_actor(request, obj.organization), membership=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        for membership in queryset.select_related("organization", "user"):
            self.delete_model(request, membership)


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin):
    list_display = [
        "name",
        "prefix",
        "organization",
        "team",
        "created_at",
        "last_used_at",
        "revoked_at",
        "expires_at",
    ]
    list_filter = ["organization"]
    exclude = ["secret_hash"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = [
        "at",
        "organization",
        "verb",
        "object_type",
        "object_id",
        "actor_user",
        "actor_api_key",
    ]
    list_filter = ["verb", "organization"]
    date_hierarchy = "at"


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    """Staff set quotas here; saving goes through ``quota_set`` so it is validated and audited
    (as the staff user, acting with owner rights on that organization)."""

    list_display = ["organization", "team", "images_per_day", "gpu_seconds_per_month", "updated_at"]
    list_filter = ["organization"]
    fields = ["organization", "team", "images_per_day", "gpu_seconds_per_month"]

    def get_readonly_fields(self, request: HttpRequest, obj: Quota | None = None) -> list[str]:
        return ["organization", "team"] if obj is not None else []

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Quota, form: object, change: bool) -> None:
        saved = quota_set(
            actor=_staff_actor(request, obj.organization),
            org=obj.organization,
            team=obj.team,
            images_per_day=obj.images_per_day,
            gpu_seconds_per_month=obj.gpu_seconds_per_month,
        )
        obj.pk = saved.pk


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "organization",
        "team",
        "kind",
        "amount",
        "state",
        "reference",
        "period_start",
        "settled_at",
    ]
    list_filter = ["kind", "state", "organization"]
    search_fields = ["reference"]
    date_hierarchy = "created_at"


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "organization", "key", "method", "path", "state", "status_code"]
    list_filter = ["state", "organization"]
    search_fields = ["key", "path"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyAdmin):
    list_display = ["url", "organization", "team", "active", "created_at", "deactivated_at"]
    list_filter = ["active", "organization"]
    exclude = ["secret"]


class WebhookDeliveryAttemptInline(admin.TabularInline):
    model = WebhookDeliveryAttempt
    extra = 0
    can_delete = False
    readonly_fields = ["number", "at", "status_code", "error", "duration_ms"]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "organization",
        "endpoint",
        "event",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "delivered_at",
    ]
    list_filter = ["status", "event", "organization"]
    search_fields = ["delivery_id"]
    inlines = [WebhookDeliveryAttemptInline]
