"""Django admin for platform staff: each organization's provenance settings (the watermark and
its private templates). Saving goes through ``provenance_settings_set``, which validates."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import ProvenanceSettings
from .services import provenance_settings_set


@admin.register(ProvenanceSettings)
class ProvenanceSettingsAdmin(admin.ModelAdmin):
    list_display = ["organization", "watermark", "private_templates", "updated_at"]
    list_filter = ["watermark"]
    search_fields = ["organization__slug", "organization__name"]

    def save_model(
        self, request: HttpRequest, obj: ProvenanceSettings, form: Any, change: bool
    ) -> None:
        saved = provenance_settings_set(
            org=obj.organization,
            watermark=obj.watermark,
            private_templates=list(obj.private_templates or []),
        )
        obj.pk = saved.pk
