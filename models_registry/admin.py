"""Django admin for platform staff, read-only: registering models, promoting and rolling back
go through the services (commands and API), which verify artifacts and write history and audit
events."""

from django.contrib import admin

from tenants.admin import ReadOnlyAdmin

from .models import AliasHistory, BaseModel, Category, ModelVersion


@admin.register(BaseModel)
class BaseModelAdmin(ReadOnlyAdmin):
    list_display = ["name", "family", "status", "size_bytes", "created_at"]
    list_filter = ["family", "status"]


@admin.register(Category)
class CategoryAdmin(ReadOnlyAdmin):
    list_display = ["slug", "name", "organization", "base_model", "trigger_token"]
    list_filter = ["organization"]
    search_fields = ["slug", "name"]


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = ["id", "organization", "category", "base", "kind", "status", "created_at"]
    list_filter = ["organization", "status", "kind"]


@admin.register(AliasHistory)
class AliasHistoryAdmin(ReadOnlyAdmin):
    list_display = ["at", "organization", "category", "alias_name", "action", "from_version",
                    "to_version", "actor_user", "actor_api_key"]  # fmt: skip
    list_filter = ["organization", "alias_name", "action"]
