"""``/api/v1/generations``: submit (202 + Location), list, get, cancel.

``Prefer: wait=N`` (N ≤ 60; a bare ``wait`` means 60) holds a create open until the job finishes
or N seconds pass: a finished job comes back as 200 with ``Preference-Applied: wait=N``, otherwise
the usual 202. Waiting takes one of the organization's waiting slots
(``EASEL_MAX_WAITERS_PER_ORG``); with none free the create answers 202 at once. Every create
honours ``Idempotency-Key`` (tenants.api.idempotency): the create is saved under the key, and the
wait (a read) happens after its commit, for a replay as much as for the first request.
"""

from __future__ import annotations

import re
import time
from functools import cached_property
from typing import Any

import django_filters
from django.db.models import QuerySet
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from tenants.api.base import CreatedCursorPagination, OrgScopedMixin, ResponseModelSerializer
from tenants.api.filters import AnyOfFilter, UtcIsoDateTimeFilter
from tenants.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from tenants.api.idempotency import with_idempotency
from tenants.api.schema import error_response
from tenants.api.throttling import waiting_slot
from tenants.models import Organization
from tenants.roles import Action

from .. import selectors, services
from ..models import GeneratedImage, GenerationJob, JobPriority, JobStatus
from ..protocol import GenerationRequestSerializer
from .images import ImageSerializer

MAX_WAIT_SECONDS = 60
_WAIT = re.compile(r"^\s*wait(?:\s*=\s*\"?(\d+)\"?)?\s*$", re.IGNORECASE)


def prefer_wait_seconds(header: str | None) -> int | None:
    """The ``wait`` preference of a ``Prefer`` header, capped at 60; None when absent or bad."""
    for part in (header or "").replace(";", ",").split(","):
        match = _WAIT.match(part)
        if match:
            return min(int(match.group(1) or MAX_WAIT_SECONDS), MAX_WAIT_SECONDS)
    return None


class GenerationCreateSerializer(GenerationRequestSerializer):
    priority = serializers.ChoiceField(
        choices=JobPriority.choices,
        default=JobPriority.INTERACTIVE,
        help_text="'interactive' (default) or 'bulk'; bulk work never delays interactive work.",
    )


class QualitySummarySerializer(serializers.Serializer):
    passed = serializers.BooleanField()
    reasons = serializers.ListField(child=serializers.CharField())


class AttemptImageSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    index = serializers.IntegerField()
    passed = serializers.BooleanField(allow_null=True)
    score = serializers.FloatField(allow_null=True)
    reasons = serializers.ListField(child=serializers.CharField())


class AttemptSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    prompt = serializers.CharField()
    negative_prompt = serializers.CharField(allow_blank=True)
    params = serializers.DictField()
    refinement = serializers.DictField(allow_null=True, help_text="How the gate changed it.")
    passed = serializers.BooleanField(allow_null=True)
    images = AttemptImageSerializer(many=True)


class GenerationJobSerializer(ResponseModelSerializer):
    category = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    base_model = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    model_version = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    source_image = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="A variation's source: a generated image."
    )
    source_upload = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="A variation's source: an upload."
    )
    template = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    images = serializers.SerializerMethodField(
        help_text="The result: per index, its best image that passed the quality gate (or, "
        "when none did, its latest attempt's)."
    )
    quality = serializers.SerializerMethodField(
        help_text="The gate's verdict: whether every result image passed, and why not."
    )
    attempt_log = serializers.SerializerMethodField(
        help_text="Every attempt: its prompt and parameters, how the gate refined them, and "
        "the images it made with their scores."
    )
    links = serializers.SerializerMethodField()

    class Meta:
        model = GenerationJob
        fields = [
            "id",
            "status",
            "priority",
            "progress",
            "cancel_requested",
            "model",
            "backend",
            "category",
            "base_model",
            "model_version",
            "source_image",
            "source_upload",
            "template",
            "prompt",
            "params",
            "num_images",
            "attempts",
            "error",
            "gpu_seconds",
            "batch_size",
            "created_at",
            "started_at",
            "finished_at",
            "images",
            "quality",
            "attempt_log",
            "links",
        ]

    def get_template(self, obj: GenerationJob) -> dict[str, Any] | None:
        if obj.template_version is None:
            return None
        application = obj.params.get("template_application")
        return {"id": obj.template_id, "application": application, "version": obj.template_version}

    def get_error(self, obj: GenerationJob) -> dict[str, str] | None:
        if not obj.error_message:
            return None
        return {"code": obj.error_code, "message": obj.error_message}

    def _results(self, obj: GenerationJob) -> list[GeneratedImage]:
        return [] if self.context.get("just_created") else selectors.result_images(obj)

    @cached_property
    def _image_serializer(self) -> ImageSerializer:
        # One for every job of a page: building a serializer's fields costs more than using them.
        return ImageSerializer(context=self.context)

    @extend_schema_field(ImageSerializer(many=True))
    def get_images(self, obj: GenerationJob) -> list[dict[str, Any]]:
        return [self._image_serializer.to_representation(i) for i in self._results(obj)]

    @extend_schema_field(QualitySummarySerializer(allow_null=True))
    def get_quality(self, obj: GenerationJob) -> dict[str, Any] | None:
        results = self._results(obj)
        verdicts = [(image.scores or {}) for image in results]
        if not results or any("passed" not in v for v in verdicts):
            return None
        reasons = sorted({r for v in verdicts if not v["passed"] for r in v.get("reasons", [])})
        return {"passed": all(v["passed"] for v in verdicts), "reasons": reasons}

    @extend_schema_field(AttemptSerializer(many=True))
    def get_attempt_log(self, obj: GenerationJob) -> list[dict[str, Any]]:
        if self.context.get("just_created"):
            return []
        images: dict[int, list[GeneratedImage]] = {}
        for image in obj.images.all():
            images.setdefault(image.attempt, []).append(image)
        return [
            {
                "number": attempt.number,
                "prompt": attempt.prompt,
                "negative_prompt": attempt.negative_prompt,
                "params": attempt.params,
                "refinement": attempt.refinement or None,
                "passed": attempt.passed,
                "images": [
                    {
                        "id": str(image.id),
                        "index": image.index,
                        "passed": (image.scores or {}).get("passed"),
                        "score": (image.scores or {}).get("score"),
                        "reasons": (image.scores or {}).get("reasons", []),
                    }
                    for image in images.get(attempt.number, [])
                ],
            }
            for attempt in obj.attempt_log.all()
        ]

    def get_links(self, obj: GenerationJob) -> dict[str, str]:
        return {
            "self": reverse("v1:generation-detail", args=[obj.pk]),
            "cancel": reverse("v1:generation-cancel", args=[obj.pk]),
        }


class GenerationFilter(django_filters.FilterSet):
    status = AnyOfFilter(choices=JobStatus.choices)
    priority = django_filters.ChoiceFilter(choices=JobPriority.choices)
    category = django_filters.CharFilter(field_name="category__slug")
    template = django_filters.CharFilter(field_name="template__application")
    template_version = django_filters.NumberFilter()
    model_version = django_filters.NumberFilter(field_name="model_version_id")
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    created_on = django_filters.DateFilter(field_name="created_at", lookup_expr="date")

    class Meta:
        model = GenerationJob
        fields = ["status", "priority", "category", "template", "model_version"]


class GenerationViewSet(
    OrgScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    queryset = GenerationJob.objects.none()
    serializer_class = GenerationJobSerializer
    filterset_class = GenerationFilter
    pagination_class = CreatedCursorPagination
    required_actions = {"create": Action.GENERATE, "cancel": Action.GENERATE}
    lookup_value_regex = "[0-9a-fA-F-]{32,36}"

    def scoped_queryset(self, org: Organization) -> QuerySet[GenerationJob]:
        return selectors.generation_job_list_for_org(org=org)

    @extend_schema(
        request=GenerationCreateSerializer,
        responses={
            200: GenerationJobSerializer,
            202: GenerationJobSerializer,
            429: error_response(
                "The organization's or team's quota, or a rate limit, would be passed."
            ),
        },
        parameters=[
            OpenApiParameter(IDEMPOTENCY_HEADER, str, OpenApiParameter.HEADER),
            OpenApiParameter(
                "Prefer", str, OpenApiParameter.HEADER, description="wait=N (N ≤ 60 seconds)"
            ),
        ],
    )
    def create(self, request: Request) -> Response:
        response = with_idempotency(request, lambda: self._submit(request), view=self)
        wait = prefer_wait_seconds(request.headers.get("Prefer"))
        if not wait or response.status_code != status.HTTP_202_ACCEPTED:
            return response
        org = request.principal.org
        with waiting_slot(org_id=org.pk) as may_wait:
            if not may_wait:
                return response
            job = selectors.get_generation_job_for_org(org=org, job_id=response.data["id"])
            job = self._wait_for(job, seconds=wait)
        if not job.is_finished:
            return response
        body = GenerationJobSerializer(job, context=self.get_serializer_context()).data
        headers = {name: value for name, value in response.items() if name != "Content-Type"}
        headers["Preference-Applied"] = f"wait={wait}"
        return Response(body, status=status.HTTP_200_OK, headers=headers)

    def _submit(self, request: Request) -> Response:
        s = GenerationCreateSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        data = dict(s.validated_data)
        priority = data.pop("priority")
        job = services.generation_job_create(
            actor=request.principal,
            data=data,
            priority=priority,
            idempotency_key=request.headers.get(IDEMPOTENCY_HEADER, ""),
        )
        headers = {"Location": reverse("v1:generation-detail", args=[job.pk])}
        # The job as created, not read back (three queries): it has no images or attempts yet.
        context = self.get_serializer_context() | {"just_created": True}
        body = GenerationJobSerializer(job, context=context).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers=headers)

    def _wait_for(self, job: GenerationJob, *, seconds: int) -> GenerationJob:
        deadline = time.monotonic() + seconds
        delay = 0.05
        org = self.request.principal.org
        while True:
            job = selectors.get_generation_job_for_org(org=org, job_id=job.pk)
            if job.is_finished or time.monotonic() >= deadline:
                return job
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.5)

    @extend_schema(
        request=None,
        responses={
            200: GenerationJobSerializer,
            409: error_response("The job has already finished; there is nothing to cancel."),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        job = services.generation_job_cancel(actor=request.principal, job=self.get_object())
        job = selectors.get_generation_job_for_org(org=request.principal.org, job_id=job.pk)
        return Response(GenerationJobSerializer(job, context=self.get_serializer_context()).data)
