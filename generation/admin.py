"""Django admin for platform staff: generation jobs and images, read-only.

Jobs change state only through services and the worker (claim, cancel, reaper), which keep the
quota ledger, webhooks and audit log consistent; the admin is for looking, not editing.
"""

from django.contrib import admin
from django.http import HttpRequest

from tenants.admin import ReadOnlyAdmin

from .models import GeneratedImage, GenerationJob


class GeneratedImageInline(admin.TabularInline):
    model = GeneratedImage
    extra = 0
    fields = ["index", "attempt", "seed", "width", "height", "sha256", "storage_key"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(GenerationJob)
class GenerationJobAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "organization",
        "status",
        "priority",
        "base_model",
        "model_version",
        "num_images",
        "attempts",
        "gpu_seconds",
        "created_at",
    ]
    list_filter = ["status", "priority", "backend", "organization"]
    search_fields = ["id", "prompt", "idempotency_key"]
    date_hierarchy = "created_at"
    list_select_related = ["organization", "base_model", "model_version"]
    inlines = [GeneratedImageInline]


@admin.register(GeneratedImage)
class GeneratedImageAdmin(ReadOnlyAdmin):
    list_display = ["id", "organization", "job", "index", "attempt", "seed", "width", "height"]
    list_filter = ["organization"]
    search_fields = ["id", "sha256", "storage_key"]
    list_select_related = ["organization", "job"]
