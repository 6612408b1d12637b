"""The quality gate's configuration over the API.

- ``GET|PUT /categories/{slug}/rubric``: the questions asked of every image of a category;
- ``GET|PATCH /quality-settings``: which optional judges (CLIP, VLM, LLM refinement) the
  organization uses, and which the platform has configured;
- ``POST /templates/{application}/rubric-draft``: questions the LLM drafts from a description
  (not saved; edit them and ``PATCH /templates/{application}`` with ``rubric``).

Template rubrics are fields of the template (``/templates``). Another organization's category
or template is the same 404 as a missing one.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from models_registry.selectors import get_category_for_org
from tenants.api.base import StrictSerializer
from tenants.api.schema import error_response
from tenants.roles import Action

from .. import quality_services as services
from .. import template_selectors
from ..models import CategoryRubric
from ..quality import quality_settings_for
from ..rubrics import DEFAULT_PASS_THRESHOLD
from .template_serializers import RubricItemSerializer, rubric_input_field


class CategoryRubricSerializer(serializers.Serializer):
    category = serializers.CharField()
    questions = RubricItemSerializer(many=True)
    pass_threshold = serializers.FloatField()
    updated_at = serializers.DateTimeField(allow_null=True)


class CategoryRubricWriteSerializer(StrictSerializer):
    questions = rubric_input_field()
    pass_threshold = serializers.FloatField(
        required=False, help_text="Share of the rubric's weight an image needs to pass, 0-1."
    )


def _rubric_data(slug: str, rubric: CategoryRubric | None) -> dict[str, Any]:
    if rubric is None:
        return {
            "category": slug,
            "questions": [],
            "pass_threshold": DEFAULT_PASS_THRESHOLD,
            "updated_at": None,
        }
    return {
        "category": slug,
        "questions": rubric.questions,
        "pass_threshold": rubric.pass_threshold,
        "updated_at": rubric.updated_at,
    }


class CategoryRubricView(APIView):
    required_actions = {"get": Action.VIEW, "put": Action.MANAGE_MODELS}

    @extend_schema(responses=CategoryRubricSerializer)
    def get(self, request: Request, slug: str) -> Response:
        category = get_category_for_org(org=request.principal.org, slug=slug)
        rubric = CategoryRubric.objects.filter(category=category).first()
        return Response(CategoryRubricSerializer(_rubric_data(slug, rubric)).data)

    @extend_schema(request=CategoryRubricWriteSerializer, responses=CategoryRubricSerializer)
    def put(self, request: Request, slug: str) -> Response:
        category = get_category_for_org(org=request.principal.org, slug=slug)
        s = CategoryRubricWriteSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        rubric = services.category_rubric_update(
            actor=request.principal,
            category=category,
            questions=s.validated_data.get("questions", []),
            pass_threshold=s.validated_data.get("pass_threshold"),
        )
        return Response(CategoryRubricSerializer(_rubric_data(slug, rubric)).data)


class QualitySettingsSerializer(serializers.Serializer):
    clip_enabled = serializers.BooleanField()
    vlm_enabled = serializers.BooleanField()
    llm_refine_enabled = serializers.BooleanField()
    configured = serializers.DictField(
        child=serializers.BooleanField(),
        help_text="Which judges the platform has set up (an enabled judge that is not "
        "configured answers 'not judged').",
    )


class QualitySettingsWriteSerializer(StrictSerializer):
    clip_enabled = serializers.BooleanField(required=False)
    vlm_enabled = serializers.BooleanField(required=False)
    llm_refine_enabled = serializers.BooleanField(required=False)


def _settings_data(row: Any) -> dict[str, Any]:
    return {
        "clip_enabled": row.clip_enabled,
        "vlm_enabled": row.vlm_enabled,
        "llm_refine_enabled": row.llm_refine_enabled,
        "configured": {
            "safety": bool(settings.EASEL_SAFETY_ENABLED),
            "clip": bool(settings.EASEL_CLIP_MODEL_PATH),
            "vlm": bool(settings.EASEL_VLM_URL),
            "llm": bool(settings.EASEL_LLM_URL),
        },
    }


class QualitySettingsView(APIView):
    required_actions = {"get": Action.VIEW, "patch": Action.MANAGE_MODELS}

    @extend_schema(responses=QualitySettingsSerializer)
    def get(self, request: Request) -> Response:
        row = quality_settings_for(request.principal.org)
        return Response(QualitySettingsSerializer(_settings_data(row)).data)

    @extend_schema(request=QualitySettingsWriteSerializer, responses=QualitySettingsSerializer)
    def patch(self, request: Request) -> Response:
        s = QualitySettingsWriteSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        row = services.quality_settings_update(
            actor=request.principal, changes=dict(s.validated_data)
        )
        return Response(QualitySettingsSerializer(_settings_data(row)).data)


class RubricDraftRequestSerializer(StrictSerializer):
    description = serializers.CharField(
        max_length=2000, help_text="What a good image of this template shows."
    )


class RubricDraftSerializer(serializers.Serializer):
    rubric = RubricItemSerializer(many=True)


class RubricDraftView(APIView):
    required_actions = {"post": Action.GENERATE}

    @extend_schema(
        request=RubricDraftRequestSerializer,
        responses={
            200: RubricDraftSerializer,
            409: error_response("No LLM endpoint is configured (`llm_not_configured`)."),
            502: error_response(
                "The LLM endpoint failed or answered nonsense (`llm_unavailable`)."
            ),
        },
    )
    def post(self, request: Request, application: str) -> Response:
        template = template_selectors.get_prompt_template_for_org(
            org=request.principal.org, application=application
        )
        s = RubricDraftRequestSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        drafted = services.rubric_draft(
            actor=request.principal, template=template, description=s.validated_data["description"]
        )
        return Response(RubricDraftSerializer({"rubric": drafted}).data)


urlpatterns = [
    path("categories/<slug:slug>/rubric", CategoryRubricView.as_view(), name="category-rubric"),
    path("quality-settings", QualitySettingsView.as_view(), name="quality-settings"),
    path(
        "templates/<slug:application>/rubric-draft",
        RubricDraftView.as_view(),
        name="template-rubric-draft",
    ),
]
