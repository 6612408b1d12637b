"""Model-registry endpoints: base models, categories (with promote / rollback / alias history)
and model versions. Thin: selectors read, services write."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from tenants.api.base import CreatedCursorPagination, OrgScopedMixin
from tenants.api.schema import error_response
from tenants.models import Organization
from tenants.roles import Action

from .. import selectors, services
from ..models import (
    AliasHistory,
    AliasName,
    BaseModel,
    Category,
    ModelVersion,
    VersionKind,
    VersionStatus,
)
from .serializers import (
    AliasHistorySerializer,
    BaseModelSerializer,
    CategoryCreateSerializer,
    CategorySerializer,
    CategoryUpdateSerializer,
    ModelVersionDetailSerializer,
    ModelVersionSerializer,
    PromoteSerializer,
    RollbackSerializer,
)


class BaseModelViewSet(viewsets.ReadOnlyModelViewSet):
    """Base pipelines every organization may use (platform-wide, read-only)."""

    queryset = BaseModel.objects.none()
    serializer_class = BaseModelSerializer
    lookup_field = "name"
    pagination_class = None

    def get_queryset(self) -> QuerySet[BaseModel]:
        return selectors.base_model_list()


class AliasHistoryPagination(CreatedCursorPagination):
    ordering = ("-at", "-id")


class CategoryViewSet(OrgScopedMixin, viewsets.ModelViewSet):
    """Product categories of your organization, each with a `production` and a `staging` alias
    pointing at a model version. Changing them needs `manage_models`."""

    queryset = Category.objects.none()
    serializer_class = CategorySerializer
    lookup_field = "slug"
    pagination_class = None
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    required_actions = {
        "create": Action.MANAGE_MODELS,
        "partial_update": Action.MANAGE_MODELS,
        "destroy": Action.MANAGE_MODELS,
        "promote": Action.MANAGE_MODELS,
        "rollback": Action.MANAGE_MODELS,
        "alias_history": Action.VIEW,
    }

    def scoped_queryset(self, org: Organization) -> QuerySet[Category]:
        return selectors.category_list_for_org(org=org)

    @extend_schema(request=CategoryCreateSerializer, responses={201: CategorySerializer})
    def create(self, request: Request) -> Response:
        s = CategoryCreateSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        category = services.category_create(actor=request.principal, **s.validated_data)
        return Response(CategorySerializer(category).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=CategoryUpdateSerializer, responses=CategorySerializer)
    def partial_update(self, request: Request, slug: str) -> Response:
        category = self.get_object()
        s = CategoryUpdateSerializer(data=request.data, partial=True)
        s.is_valid(raise_exception=True)
        category = services.category_update(
            actor=request.principal, category=category, **s.validated_data
        )
        return Response(CategorySerializer(category).data)

    @extend_schema(
        responses={
            204: None,
            400: error_response("The category has model versions; it can be renamed instead."),
        }
    )
    def destroy(self, request: Request, slug: str) -> Response:
        services.category_delete(actor=request.principal, category=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=PromoteSerializer, responses=CategorySerializer)
    @action(detail=True, methods=["post"])
    def promote(self, request: Request, slug: str) -> Response:
        """Point the category's alias (default `production`) at a version of this category.
        Refused for a version of another base family; audited and kept in the alias history."""
        category = self.get_object()
        s = PromoteSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        version = selectors.get_model_version_for_org(
            org=request.principal.org, version_id=s.validated_data["version"]
        )
        services.alias_promote(
            actor=request.principal,
            category=category,
            version=version,
            alias=s.validated_data["alias"],
        )
        return Response(CategorySerializer(self.get_object()).data)

    @extend_schema(request=RollbackSerializer, responses=CategorySerializer)
    @action(detail=True, methods=["post"])
    def rollback(self, request: Request, slug: str) -> Response:
        """Move the alias back to the version it served before the current one was promoted."""
        category = self.get_object()
        s = RollbackSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        services.alias_rollback(
            actor=request.principal, category=category, alias=s.validated_data["alias"]
        )
        return Response(CategorySerializer(self.get_object()).data)

    @extend_schema(
        responses=inline_serializer(
            "PaginatedAliasHistoryList",
            fields={
                "next": serializers.URLField(allow_null=True),
                "previous": serializers.URLField(allow_null=True),
                "results": AliasHistorySerializer(many=True),
            },
        ),
        parameters=[OpenApiParameter("alias", str, enum=AliasName.values)],
    )
    @action(detail=True, methods=["get"], url_path="alias-history")
    def alias_history(self, request: Request, slug: str) -> Response:
        """Every move of the category's aliases, newest first, with who made it and when."""
        category = self.get_object()
        rows: QuerySet[AliasHistory] = selectors.alias_history_for_category(category=category)
        alias = request.query_params.get("alias")
        if alias:
            if alias not in AliasName.values:
                raise ValidationError({"alias": f"Use one of: {', '.join(AliasName.values)}."})
            rows = rows.filter(alias_name=alias)
        paginator = AliasHistoryPagination()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(AliasHistorySerializer(page, many=True).data)


class ModelVersionFilter(django_filters.FilterSet):
    category = django_filters.CharFilter(field_name="category__slug")
    status = django_filters.ChoiceFilter(choices=VersionStatus.choices)
    kind = django_filters.ChoiceFilter(choices=VersionKind.choices)
    base = django_filters.CharFilter(field_name="base__name")

    class Meta:
        model = ModelVersion
        fields = ["category", "status", "kind", "base"]


class ModelVersionViewSet(OrgScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Model versions (full checkpoints or LoRA adapters) of your organization's categories;
    filter by `category`, `status`, `kind`, `base`. The detail adds lineage and the artifact."""

    queryset = ModelVersion.objects.none()
    serializer_class = ModelVersionSerializer
    filterset_class = ModelVersionFilter
    pagination_class = CreatedCursorPagination

    def get_serializer_class(self) -> type[ModelVersionSerializer]:
        if self.action == "retrieve":
            return ModelVersionDetailSerializer
        return ModelVersionSerializer

    def scoped_queryset(self, org: Organization) -> QuerySet[ModelVersion]:
        return selectors.model_version_list_for_org(org=org)
