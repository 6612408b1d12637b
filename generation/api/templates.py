"""Prompt-template endpoints: list, create, read (latest or ``?version=N``), edit (a new
version), version history, and a render preview; plus the list of style presets.

``/templates/{application}`` addresses an application's template; another organization's
template is the same 404 as a missing one.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import pagination, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter
from rest_framework.views import APIView

from tenants.roles import Action

from .. import template_selectors as selectors
from .. import template_services as services
from ..models import PromptTemplate
from ..rubrics import DEFAULT_PASS_THRESHOLD, DEFAULT_QUALITY_ATTEMPTS
from ..styles import STYLES
from ..templates import TemplateVariablesError, render_template
from .template_serializers import (
    PromptTemplateCreateSerializer,
    PromptTemplateSerializer,
    PromptTemplateUpdateSerializer,
    RenderedPromptSerializer,
    StylePresetSerializer,
    TemplateRenderSerializer,
)

VERSION_PARAMETER = OpenApiParameter(
    "version", OpenApiTypes.INT, description="A specific version instead of the latest."
)
PUT_DEFAULTS: dict[str, Any] = {
    "few_shot_examples": [],
    "style": "",
    "negative_prompt": "",
    "default_params": {},
    "rubric": [],
    "pass_threshold": DEFAULT_PASS_THRESHOLD,
    "max_attempts": DEFAULT_QUALITY_ATTEMPTS,
}


class ApplicationPagination(pagination.CursorPagination):
    ordering = "application"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class VersionPagination(ApplicationPagination):
    ordering = "-version"


def _version_param(request: Request) -> int | None:
    raw = request.query_params.get("version")
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ValidationError({"version": "Must be a positive integer."})
    return int(raw)


class PromptTemplateViewSet(viewsets.GenericViewSet):
    queryset = PromptTemplate.objects.none()
    serializer_class = PromptTemplateSerializer
    lookup_field = "application"
    lookup_value_regex = "[-a-zA-Z0-9_]+"
    pagination_class = ApplicationPagination
    required_actions = {
        "create": Action.GENERATE,
        "update": Action.GENERATE,
        "partial_update": Action.GENERATE,
        "render": Action.VIEW,
    }

    def get_queryset(self) -> QuerySet[PromptTemplate]:
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return selectors.prompt_template_latest_list(org=self.request.principal.org)

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(PromptTemplateSerializer(page, many=True).data)

    @extend_schema(
        request=PromptTemplateCreateSerializer, responses={201: PromptTemplateSerializer}
    )
    def create(self, request: Request) -> Response:
        s = PromptTemplateCreateSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        template = services.prompt_template_create(actor=request.principal, **s.validated_data)
        return Response(PromptTemplateSerializer(template).data, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[VERSION_PARAMETER])
    def retrieve(self, request: Request, application: str) -> Response:
        template = selectors.get_prompt_template_for_org(
            org=request.principal.org, application=application, version=_version_param(request)
        )
        return Response(PromptTemplateSerializer(template).data)

    def _edit(self, request: Request, application: str, *, partial: bool) -> Response:
        # Resolve first so that another organization's application is a 404, not a 400.
        selectors.get_prompt_template_for_org(org=request.principal.org, application=application)
        s = PromptTemplateUpdateSerializer(data=request.data, partial=partial)
        s.is_valid(raise_exception=True)
        changes = dict(s.validated_data)
        base_version = changes.pop("base_version", None)
        if not partial:
            changes = PUT_DEFAULTS | changes
        template, _created = services.prompt_template_update(
            actor=request.principal,
            application=application,
            changes=changes,
            base_version=base_version,
        )
        return Response(PromptTemplateSerializer(template).data)

    @extend_schema(
        request=PromptTemplateUpdateSerializer,
        responses=PromptTemplateSerializer,
        description="Replace the template: writes a new version (unchanged content writes none).",
    )
    def update(self, request: Request, application: str) -> Response:
        return self._edit(request, application, partial=False)

    @extend_schema(
        request=PromptTemplateUpdateSerializer,
        responses=PromptTemplateSerializer,
        description="Change some fields: writes a new version (unchanged content writes none).",
    )
    def partial_update(self, request: Request, application: str) -> Response:
        return self._edit(request, application, partial=True)

    @extend_schema(responses=PromptTemplateSerializer(many=True))
    @action(detail=True, methods=["get"])
    def versions(self, request: Request, application: str) -> Response:
        versions = selectors.prompt_template_version_list(
            org=request.principal.org, application=application
        )
        paginator = VersionPagination()
        page = paginator.paginate_queryset(versions, request, view=self)
        return paginator.get_paginated_response(PromptTemplateSerializer(page, many=True).data)

    @extend_schema(request=TemplateRenderSerializer, responses=RenderedPromptSerializer)
    @action(detail=True, methods=["post"])
    def render(self, request: Request, application: str) -> Response:
        """Preview the prompt a generation with these variables would use."""
        s = TemplateRenderSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        data = s.validated_data
        template = selectors.get_prompt_template_for_org(
            org=request.principal.org, application=application, version=data.get("version")
        )
        try:
            rendered = render_template(
                template,
                data.get("variables") or {},
                style=data.get("style"),
                negative_prompt=data.get("negative_prompt"),
            )
        except TemplateVariablesError as exc:
            raise ValidationError({"variables": str(exc)}) from None
        body = {
            "application": template.application,
            "template_id": rendered.template_id,
            "template_version": rendered.template_version,
            "prompt": rendered.prompt,
            "negative_prompt": rendered.negative_prompt,
            "style": rendered.style,
        }
        return Response(RenderedPromptSerializer(body).data)


class StyleListView(APIView):
    """The style presets a request or template may name."""

    @extend_schema(responses=StylePresetSerializer(many=True))
    def get(self, request: Request) -> Response:
        rows = [
            {
                "name": s.name,
                "description": s.description,
                "lighting": s.lighting,
                "background": s.background,
                "framing": s.framing,
                "negative": list(s.negative),
                "params": dict(s.params),
            }
            for s in STYLES.values()
        ]
        return Response(StylePresetSerializer(rows, many=True).data)


router = SimpleRouter(trailing_slash=False)
router.register("templates", PromptTemplateViewSet, basename="template")

urlpatterns = [path("styles", StyleListView.as_view(), name="styles"), *router.urls]
