"""Shared API building blocks: strict serializers (unknown fields are an error), response-only
model serializers, tenant-scoped generic views and cursor pagination."""

from __future__ import annotations

from typing import Any

from rest_framework import pagination, serializers


class StrictSerializer(serializers.Serializer):
    """Refuse fields the serializer does not declare (mass-assignment and typo protection)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            writable = {name for name, f in self.fields.items() if not f.read_only}
            unknown = sorted(set(data) - writable)
            if unknown:
                raise serializers.ValidationError(dict.fromkeys(unknown, "Unknown field."))
        return super().to_internal_value(data)


class StrictModelSerializer(StrictSerializer, serializers.ModelSerializer):
    pass


class ResponseModelSerializer(serializers.ModelSerializer):
    """A model serializer that only ever writes responses (input has its own serializers): every
    field is read-only, so the OpenAPI schema marks each one ``readOnly`` and required, which is
    what a response is: every field present, ``null`` where the schema says ``nullable``."""

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        for field in fields.values():
            field.read_only = True
        return fields


class CreatedCursorPagination(pagination.CursorPagination):
    ordering = "-created_at"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class OrgScopedMixin:
    """Generic views whose rows all belong to the requesting principal's organization.

    Subclasses set ``queryset = Model.objects.none()`` (for the schema) and implement
    ``scoped_queryset(org)``; ``get_object`` goes through ``get_for_org`` so another
    organization's row is the same 404 as a missing one.
    """

    def scoped_queryset(self, org: Any) -> Any:
        raise NotImplementedError

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return self.scoped_queryset(self.request.principal.org)  # type: ignore[attr-defined]

    def get_object(self) -> Any:
        from ..selectors import get_for_org

        lookup = self.kwargs[self.lookup_url_kwarg or self.lookup_field]  # type: ignore[attr-defined]
        obj = get_for_org(
            self.get_queryset(),
            org=self.request.principal.org,  # type: ignore[attr-defined]
            **{self.lookup_field: lookup},  # type: ignore[attr-defined]
        )
        self.check_object_permissions(self.request, obj)  # type: ignore[attr-defined]
        return obj
