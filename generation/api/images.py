"""Image endpoints: metadata, a short-lived download URL, and the local-storage file link.

A flagged image (see ``selectors.image_withheld``) has no URL and its download is a 404.
``GET /images/<id>`` and ``GET /images/<id>/download`` (302 to the URL) are organization-scoped:
another organization's image is the same 404 as a missing one. On S3 the URL is a presigned GET
for one key; on local storage it is ``/images/file/<token>``, a signed, expiring link to one key
that needs no other credential (like a presigned URL).
"""

from __future__ import annotations

import mimetypes

from django.core.files.storage import default_storage
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpResponseRedirect
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.views import APIView

from tenants.api.base import OrgScopedMixin, ResponseModelSerializer
from tenants.models import Organization

from .. import selectors, storage
from ..models import GeneratedImage
from ..selectors import image_withheld


class ImageSerializer(ResponseModelSerializer):
    job = serializers.UUIDField(source="job_id", read_only=True)
    url = serializers.SerializerMethodField(help_text="Short-lived download URL of the PNG.")
    thumbnail_url = serializers.SerializerMethodField(help_text="Short-lived URL of a thumbnail.")
    url_expires_at = serializers.SerializerMethodField()

    class Meta:
        model = GeneratedImage
        fields = [
            "id",
            "job",
            "index",
            "attempt",
            "seed",
            "width",
            "height",
            "sha256",
            "size_bytes",
            "scores",
            "is_result",
            "created_at",
            "url",
            "thumbnail_url",
            "url_expires_at",
        ]

    def _url(self, key: str) -> storage.DownloadUrl | None:
        if not key:
            return None
        cache: dict[str, storage.DownloadUrl] = self.context.setdefault("_urls", {})
        if key not in cache:
            cache[key] = storage.download_url(key)
        return cache[key]

    def _absolute(self, url: str) -> str:
        request = self.context.get("request")
        if url.startswith("/") and request is not None:
            return request.build_absolute_uri(url)
        return url

    def get_url(self, obj: GeneratedImage) -> str | None:
        if image_withheld(obj):
            return None
        link = self._url(obj.storage_key)
        return self._absolute(link.url) if link else None

    def get_thumbnail_url(self, obj: GeneratedImage) -> str | None:
        if image_withheld(obj):
            return None
        link = self._url(obj.thumbnail_key)
        return self._absolute(link.url) if link else None

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_url_expires_at(self, obj: GeneratedImage) -> str | None:
        if image_withheld(obj):
            return None
        link = self._url(obj.storage_key)
        return link.expires_at.isoformat() if link else None


class ImageViewSet(OrgScopedMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = GeneratedImage.objects.none()
    serializer_class = ImageSerializer
    lookup_value_regex = "[0-9a-fA-F-]{32,36}"

    def scoped_queryset(self, org: Organization) -> QuerySet[GeneratedImage]:
        return selectors.generated_image_list_for_org(org=org)

    @extend_schema(
        responses={302: None},
        description="Redirects (302) to a short-lived URL of the PNG; `?thumbnail=1` for the "
        "thumbnail.",
    )
    @action(detail=True, methods=["get"])
    def download(self, request: Request, pk: str) -> HttpResponseRedirect:
        image = self.get_object()
        if image_withheld(image):
            raise Http404("This image was flagged by the safety check and is not served.")
        key = image.thumbnail_key if request.query_params.get("thumbnail") else image.storage_key
        url = storage.download_url(key).url
        return HttpResponseRedirect(request.build_absolute_uri(url) if url.startswith("/") else url)


class ImageFileView(APIView):
    """Serve one stored image for a valid, unexpired signed token (local storage only)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    schema = None

    def get(self, request: Request, token: str) -> FileResponse:
        try:
            key = storage.key_for_download_token(token)
        except storage.DownloadTokenInvalid as exc:
            raise Http404(str(exc)) from None
        if not default_storage.exists(key):
            raise Http404("This image no longer exists.")
        content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        response = FileResponse(default_storage.open(key, "rb"), content_type=content_type)
        response["Cache-Control"] = "private, max-age=60"
        response["X-Content-Type-Options"] = "nosniff"
        return response
