"""``/api/v1/uploads``: images to vary (img2img, inpaint sources) and inpainting masks.

``POST`` (multipart: ``file`` and ``kind``, ``image`` or ``mask``) validates and stores one file and
answers 201 with its id, which a generation names as ``source_upload`` or ``mask_upload``. A refused
file is a 400 naming it and the reason; nothing is stored. ``GET`` lists and reads an
organization's uploads; another organization's is the same 404 as a missing one.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from tenants.api.base import CreatedCursorPagination, OrgScopedMixin, ResponseModelSerializer
from tenants.models import Organization
from tenants.roles import Action

from .. import storage, uploads
from ..models import Upload, UploadKind


class UploadSerializer(ResponseModelSerializer):
    url = serializers.SerializerMethodField(help_text="Short-lived URL of the stored PNG.")

    class Meta:
        model = Upload
        fields = [
            "id",
            "kind",
            "file_name",
            "width",
            "height",
            "sha256",
            "size_bytes",
            "created_at",
            "url",
        ]

    def get_url(self, obj: Upload) -> str:
        url = storage.download_url(obj.storage_key).url
        request = self.context.get("request")
        return request.build_absolute_uri(url) if url.startswith("/") and request else url


class UploadCreateSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A PNG, JPEG or WebP image.")
    kind = serializers.ChoiceField(
        choices=UploadKind.choices,
        default=UploadKind.IMAGE,
        help_text="'image' (a source to vary, default) or 'mask' (white where inpainting "
        "repaints).",
    )


class UploadViewSet(
    OrgScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    queryset = Upload.objects.none()
    serializer_class = UploadSerializer
    pagination_class = CreatedCursorPagination
    parser_classes = [MultiPartParser, FormParser]
    required_actions = {"create": Action.GENERATE}
    lookup_value_regex = "[0-9a-fA-F-]{32,36}"

    def scoped_queryset(self, org: Organization) -> QuerySet[Upload]:
        return Upload.objects.filter(organization=org)

    @extend_schema(
        request={"multipart/form-data": UploadCreateSerializer},
        responses={201: UploadSerializer},
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        from training.uploads import read_upload

        s = UploadCreateSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        sent = s.validated_data["file"]
        upload = uploads.upload_create(
            actor=request.principal,
            file_name=sent.name or "",
            data=read_upload(sent),
            kind=s.validated_data["kind"],
        )
        body = UploadSerializer(upload, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_201_CREATED)
