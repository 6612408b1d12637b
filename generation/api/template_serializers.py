"""Serializers for the prompt-template endpoints."""

from __future__ import annotations

from rest_framework import serializers

from tenants.api.base import ResponseModelSerializer, StrictSerializer

from ..models import PromptTemplate
from ..protocol import MAX_NEGATIVE_PROMPT_CHARS, MAX_VARIABLE_CHARS, ProtocolParamsSerializer
from ..rubrics import CHECK_KINDS, MAX_RUBRIC_QUESTIONS, RUBRIC_JUDGES
from ..styles import STYLE_NAMES
from ..template_services import MAX_EXAMPLE_CHARS, MAX_FEW_SHOT_EXAMPLES, MAX_TEMPLATE_CHARS
from ..templates import template_variables


class RubricItemSerializer(serializers.Serializer):
    """One question of a rubric, as stored (see generation.rubrics)."""

    question = serializers.CharField(help_text="Yes/no question; may use the template's {vars}.")
    expected = serializers.BooleanField(help_text="The answer a good image gets.")
    weight = serializers.FloatField(help_text="How much it counts toward the score (> 0).")
    judge = serializers.ChoiceField(choices=RUBRIC_JUDGES, help_text="Who answers it.")
    check = serializers.CharField(
        allow_blank=True, help_text=f"For judge 'check': {', '.join(CHECK_KINDS)}."
    )


RUBRIC_HELP = (
    "Yes/no questions the quality gate asks of each image: objects {question, expected "
    "('yes'|'no', default yes), weight (> 0, default 1), judge (" + ", ".join(RUBRIC_JUDGES) + "; "
    "default vlm), check (for judge 'check': " + ", ".join(CHECK_KINDS) + ")}, or plain "
    "question strings (judge vlm, expected yes). Questions may use the template's {variables}."
)


def rubric_input_field() -> serializers.ListField:
    """Rubric input: validated by the service (generation.rubrics), so API and studio agree."""
    return serializers.ListField(
        child=serializers.JSONField(),
        max_length=MAX_RUBRIC_QUESTIONS,
        required=False,
        help_text=RUBRIC_HELP,
    )


class PromptTemplateSerializer(ResponseModelSerializer):
    rubric = RubricItemSerializer(many=True, read_only=True)
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
            "pass_threshold",
            "max_attempts",
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
    rubric = rubric_input_field()
    pass_threshold = serializers.FloatField(
        required=False, help_text="Share of the rubric's weight an image needs to pass, 0-1."
    )
    max_attempts = serializers.IntegerField(
        required=False, help_text="Attempts the gate may make, refining the prompt: 1-5."
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
