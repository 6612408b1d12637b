"""Django admin for platform staff. API keys and the audit log are read-only: creating or
changing them must go through services, which hash secrets and write audit events."""

from django.contrib import admin
from django.http import HttpRequest

from .models import ApiKey, AuditEvent, Membership, Organization, Team


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class TeamInline(admin.TabularInline):
    model = Team
    extra = 0


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "default_model", "created_at"]
    search_fields = ["name", "slug"]
    inlines = [TeamInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role"]
    list_filter = ["role", "organization"]


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
