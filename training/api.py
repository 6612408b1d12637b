"""``/api/v1/trainings``: submit a fine-tuning job (multipart: the photos and the fields), list,
get, cancel. Another organization's job (and its images) is the same 404 as a missing one.

    curl -F category=produce -F rare_token=sks -F class_prompt="a star on a white background" \\
         -F images=@star1.png -F images=@star2.png -F images=@star3.png \\
         -F 'params={"max_steps": 300}' -H "Authorization: Bearer $KEY" .../api/v1/trainings
"""

from __future__ import annotations

import json
from typing import Any

import django_filters
from django.db.models import QuerySet
from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from generation import storage
from models_registry.selectors import get_category_for_org
from tenants.api.base import CreatedCursorPagination, OrgScopedMixin, ResponseModelSerializer
from tenants.api.filters import AnyOfFilter, UtcIsoDateTimeFilter
from tenants.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from tenants.api.idempotency import with_idempotency
from tenants.api.schema import error_response
from tenants.models import Organization
from tenants.roles import Action

from . import selectors, services
from .models import TrainingJob, TrainingMode, TrainingStatus
from .uploads import MAX_IMAGES, read_upload


class JsonObjectField(serializers.JSONField):
    """A JSON object, given as JSON in a JSON body or as a JSON string in a multipart form."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str):
            try:
                data = json.loads(data or "{}")
            except json.JSONDecodeError as exc:
                raise serializers.ValidationError(f"Not valid JSON: {exc.msg}.") from None
        if not isinstance(data, dict):
            raise serializers.ValidationError("Must be a JSON object of training parameters.")
        return data


class TrainingCreateSerializer(serializers.Serializer):
    category = serializers.SlugField(help_text="The category the new version is for.")
    rare_token = serializers.CharField(
        max_length=20, help_text="A rare word the product is bound to, e.g. 'sks'."
    )
    class_prompt = serializers.CharField(
        max_length=300, help_text="The kind of product without the token, e.g. 'a bottle'."
    )
    instance_prompt = serializers.CharField(
        max_length=300,
        required=False,
        allow_blank=True,
        help_text="Defaults to '<rare_token> <class_prompt>'; must contain the token.",
    )
    mode = serializers.ChoiceField(choices=TrainingMode.choices, default=TrainingMode.LORA)
    params = JsonObjectField(
        required=False,
        help_text="Trainer parameters (resolution, max_steps, learning_rate, lr_scheduler, rank, "
        "train_text_encoder, batch_size, gradient_accumulation_steps, mixed_precision, "
        "gradient_checkpointing, seed, with_prior_preservation, prior_loss_weight, "
        "num_class_images, checkpoint_every, validation_every); defaults by base model family.",
    )
    images = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True),
        max_length=MAX_IMAGES,
        help_text="3–30 photos (PNG, JPEG or WebP), at least the resolution on the short side.",
    )


def _url(request: Request | None, key: str) -> str:
    link = storage.download_url(key).url
    return request.build_absolute_uri(link) if request and link.startswith("/") else link


class TrainingJobSerializer(ResponseModelSerializer):
    category = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    base_model = serializers.SlugRelatedField(slug_field="name", read_only=True)
    output_version = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    progress = serializers.FloatField(read_only=True)
    error = serializers.SerializerMethodField()
    images = serializers.SerializerMethodField()
    validation = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    class Meta:
        model = TrainingJob
        fields = [
            "id",
            "status",
            "category",
            "base_model",
            "mode",
            "rare_token",
            "instance_prompt",
            "class_prompt",
            "params",
            "step",
            "total_steps",
            "progress",
            "loss_curve",
            "log",
            "attempts",
            "cancel_requested",
            "error",
            "gpu_seconds",
            "metrics",
            "output_version",
            "images",
            "validation",
            "created_at",
            "started_at",
            "finished_at",
            "links",
        ]

    def get_error(self, obj: TrainingJob) -> dict[str, str] | None:
        return {"code": obj.error_code, "message": obj.error_message} if obj.error_code else None

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_images(self, obj: TrainingJob) -> list[dict[str, Any]]:
        return [
            {
                "index": i.index,
                "file_name": i.file_name,
                "sha256": i.sha256,
                "width": i.width,
                "height": i.height,
                "url": _url(self.context.get("request"), i.storage_key),
            }
            for i in obj.images.all()
        ]

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_validation(self, obj: TrainingJob) -> list[dict[str, Any]]:
        return [
            {
                "id": v.pk,
                "model_version": v.model_version_id,
                "made_with": f"version {v.model_version_id}" if v.model_version_id else "base",
                "step": v.step,
                "prompt": v.prompt,
                "seed": v.seed,
                "passed": (v.scores or {}).get("passed"),
                "score": (v.scores or {}).get("score"),
                "url": _url(self.context.get("request"), v.storage_key),
            }
            for v in obj.validation.all()
        ]

    def get_links(self, obj: TrainingJob) -> dict[str, str]:
        return {
            "self": reverse("v1:training-detail", args=[obj.pk]),
            "cancel": reverse("v1:training-cancel", args=[obj.pk]),
        }


class TrainingFilter(django_filters.FilterSet):
    status = AnyOfFilter(choices=TrainingStatus.choices)
    category = django_filters.CharFilter(field_name="category__slug")
    mode = django_filters.ChoiceFilter(choices=TrainingMode.choices)
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = TrainingJob
        fields = ["status", "category", "mode"]


class TrainingViewSet(
    OrgScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    queryset = TrainingJob.objects.none()
    serializer_class = TrainingJobSerializer
    filterset_class = TrainingFilter
    pagination_class = CreatedCursorPagination
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    required_actions = {"create": Action.TRAIN, "cancel": Action.TRAIN}
    lookup_value_regex = "[0-9a-fA-F-]{32,36}"

    def scoped_queryset(self, org: Organization) -> QuerySet[TrainingJob]:
        return selectors.training_job_list_for_org(org=org)

    @extend_schema(
        request={"multipart/form-data": TrainingCreateSerializer},
        responses={
            202: TrainingJobSerializer,
            404: error_response("No such category in your organization."),
            429: error_response("The organization's GPU-seconds quota would be passed."),
        },
    )
    def create(self, request: Request) -> Response:
        return with_idempotency(request, lambda: self._submit(request), view=self)

    def _submit(self, request: Request) -> Response:
        data = request.data.copy() if hasattr(request.data, "copy") else dict(request.data)
        if hasattr(request.data, "getlist"):
            data.setlist("images", request.FILES.getlist("images"))
        s = TrainingCreateSerializer(data=data)
        s.is_valid(raise_exception=True)
        v = s.validated_data
        category = get_category_for_org(org=request.principal.org, slug=v["category"])
        files = [(f.name or f"image-{n + 1}", read_upload(f)) for n, f in enumerate(v["images"])]
        job = services.training_job_create(
            actor=request.principal,
            category=category,
            files=files,
            rare_token=v["rare_token"],
            class_prompt=v["class_prompt"],
            instance_prompt=v.get("instance_prompt", ""),
            mode=v["mode"],
            params=v.get("params") or {},
            idempotency_key=request.headers.get(IDEMPOTENCY_HEADER, ""),
        )
        job = selectors.get_training_job_for_org(org=request.principal.org, job_id=job.pk)
        body = TrainingJobSerializer(job, context=self.get_serializer_context()).data
        headers = {"Location": reverse("v1:training-detail", args=[job.pk])}
        return Response(body, status=status.HTTP_202_ACCEPTED, headers=headers)

    @extend_schema(
        request=None,
        responses={
            200: TrainingJobSerializer,
            409: error_response("The job has already finished; there is nothing to cancel."),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        job = services.training_job_cancel(actor=request.principal, job=self.get_object())
        job = selectors.get_training_job_for_org(org=request.principal.org, job_id=job.pk)
        return Response(TrainingJobSerializer(job, context=self.get_serializer_context()).data)


router = SimpleRouter(trailing_slash=False)
router.register("trainings", TrainingViewSet, basename="training")
urlpatterns = router.urls
