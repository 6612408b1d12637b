"""Serializers for the prompt-template endpoints."""

from __future__ import annotations

from rest_framework import serializers

from tenants.api.base import ResponseModelSerializer, StrictSerializer

from ..models import PromptTemplate
from ..protocol import MAX_NEGATIVE_PROMPT_CHARS, MAX_VARIABLE_CHARS, ProtocolParamsSerializer
from ..styles import STYLE_NAMES
from ..template_services import (
    MAX_EXAMPLE_CHARS,
    MAX_FEW_SHOT_EXAMPLES,
    MAX_QUESTION_CHARS,
    MAX_RUBRIC_QUESTIONS,
    MAX_TEMPLATE_CHARS,
)
from ..templates import template_variables


class PromptTemplateSerializer(ResponseModelSerializer):
    variables = serializers.SerializerMethodField(
        help_text="The {variables} the text uses, in order of first use."
    )
    created_by = serializers.CharField(
        source="created_by.username", read_only=True, default=None, allow_null=True
    )

    class Meta:
        model = PromptTemplate
        fields = [
            "id",
            "application",
            "version",
            "text",
            "variables",
            "few_shot_examples",
            "style",
            "negative_prompt",
            "default_params",
            "rubric",
            "created_by",
            "created_at",
        ]

    def get_variables(self, obj: PromptTemplate) -> list[str]:
        return template_variables(obj.text)


class _TemplateFieldsSerializer(StrictSerializer):
    text = serializers.CharField(
        max_length=MAX_TEMPLATE_CHARS,
        help_text="Prompt text with plain {variables}; write literal braces as {{ and }}.",
    )
    few_shot_examples = serializers.ListField(
        child=serializers.CharField(max_length=MAX_EXAMPLE_CHARS),
        max_length=MAX_FEW_SHOT_EXAMPLES,
        required=False,
        help_text=(
            "Example prompts. Comma-separated phrases (after each example's subject) that more "
            "than half of the examples share are appended to the rendered prompt if it lacks them."
        ),
    )
    style = serializers.ChoiceField(
        choices=STYLE_NAMES,
        required=False,
        allow_blank=True,
        help_text=f"Style preset: {', '.join(STYLE_NAMES)}; '' for none.",
    )
    negative_prompt = serializers.CharField(
        max_length=MAX_NEGATIVE_PROMPT_CHARS, required=False, allow_blank=True
    )
    default_params = ProtocolParamsSerializer(
        required=False,
        help_text="Protocol parameters used when a request does not set them.",
    )
    rubric = serializers.ListField(
        child=serializers.CharField(max_length=MAX_QUESTION_CHARS),
        max_length=MAX_RUBRIC_QUESTIONS,
        required=False,
        help_text="Yes/no questions the quality gate asks of each image.",
    )


class PromptTemplateCreateSerializer(_TemplateFieldsSerializer):
    application = serializers.SlugField(
        max_length=80, help_text="What the template is for, e.g. 'product-hero'."
    )


class PromptTemplateUpdateSerializer(_TemplateFieldsSerializer):
    """PUT replaces every field (omitted ones become empty); PATCH changes the given ones.
    Either way the result is a new version."""

    base_version = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text="The version this edit starts from; refused if it is no longer the latest.",
    )


class TemplateRenderSerializer(StrictSerializer):
    variables = serializers.DictField(
        child=serializers.CharField(max_length=MAX_VARIABLE_CHARS, allow_blank=True),
        required=False,
        help_text="A value for every {variable} of the template, and no other.",
    )
    version = serializers.IntegerField(
        required=False, min_value=1, help_text="Render this version instead of the latest."
    )
    style = serializers.ChoiceField(
        choices=STYLE_NAMES,
        required=False,
        allow_blank=True,
        help_text="Preview with this style instead of the template's.",
    )
    negative_prompt = serializers.CharField(
        max_length=MAX_NEGATIVE_PROMPT_CHARS,
        required=False,
        allow_blank=True,
        help_text="Preview with this negative prompt instead of the template's.",
    )


class RenderedPromptSerializer(serializers.Serializer):
    application = serializers.CharField()
    template_id = serializers.IntegerField()
    template_version = serializers.IntegerField()
    prompt = serializers.CharField()
    negative_prompt = serializers.CharField(allow_blank=True)
    style = serializers.CharField(allow_blank=True)


class StylePresetSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    lighting = serializers.CharField()
    background = serializers.CharField()
    framing = serializers.CharField()
    negative = serializers.ListField(child=serializers.CharField())
    params = serializers.DictField()
