"""The unified parameter protocol in the API: the request schema (defined with the protocol in
``generation.protocol``) and the resolved parameters a job reports back."""

from __future__ import annotations

from rest_framework import serializers

from ..protocol import GenerationRequestSerializer, ProtocolParamsSerializer

__all__ = ["GenerationParamsSerializer", "GenerationRequestSerializer", "ProtocolParamsSerializer"]


class GenerationParamsSerializer(serializers.Serializer):
    """The parameters a generation actually ran with, after defaults, template and style."""

    prompt = serializers.CharField(help_text="The prompt as rendered, style phrases included.")
    negative_prompt = serializers.CharField(allow_blank=True)
    style = serializers.CharField(allow_blank=True)
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    cfg_scale = serializers.FloatField()
    steps = serializers.IntegerField()
    seed = serializers.IntegerField(help_text="Image i of the batch used seed + i.")
    num_images = serializers.IntegerField()
    scheduler = serializers.CharField()
    family = serializers.CharField(help_text="tiny, sd15, sdxl or provider.")
    model = serializers.CharField(allow_null=True, help_text="As requested.")
    category = serializers.CharField(allow_null=True)
    base_model = serializers.CharField(allow_null=True, help_text="What served it.")
    template_id = serializers.IntegerField(allow_null=True)
    template_application = serializers.CharField(allow_null=True)
    template_version = serializers.IntegerField(allow_null=True)
    variables = serializers.DictField(child=serializers.CharField())
    seed_chosen = serializers.BooleanField(help_text="True when the seed was drawn by Easel.")
