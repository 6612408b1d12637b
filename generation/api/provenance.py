"""``POST /api/v1/provenance/verify``: an uploaded image (multipart ``file``) → its content
credentials and whether they are valid, its XMP fields, and its watermark id — with the image of
the caller's organization that id names, if there is one.

    curl -F file=@product.png -H "Authorization: Bearer $KEY" .../api/v1/provenance/verify

The upload passes the same checks as a training photo (``training.uploads``: size, format from
the header and a name that agrees, pixels before decoding, a complete decode), and is read as
sent: nothing is re-encoded. Any role may verify (``view``).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from provenance.engine.manifest import GENERATION_ASSERTION, assertion
from provenance.verification import Verification, image_verify
from tenants.models import Organization
from tenants.roles import Action
from training.uploads import image_file_check, read_upload

from .. import selectors


class VerifyUploadSerializer(serializers.Serializer):
    file = serializers.FileField(
        allow_empty_file=True, help_text="The image to verify: PNG, JPEG or WebP, as downloaded."
    )


class FailureSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="C2PA status code, e.g. 'assertion.dataHash.mismatch'.")
    explanation = serializers.CharField()


class ContentCredentialsSerializer(serializers.Serializer):
    present = serializers.BooleanField(help_text="The file carries a C2PA manifest store.")
    valid = serializers.BooleanField(
        help_text="The signature verifies and the hash binding matches the file's bytes."
    )
    trusted = serializers.BooleanField(
        help_text="Also, the signing certificate chains to a trust anchor of this platform."
    )
    signature_valid = serializers.BooleanField()
    hash_valid = serializers.BooleanField(
        help_text="False when any byte the manifest covers was changed."
    )
    state = serializers.CharField(help_text="c2pa-rs's state: Invalid, Valid or Trusted.")
    failures = FailureSerializer(many=True)
    error = serializers.CharField(help_text="Why a manifest that is there could not be read.")
    generator = serializers.CharField(allow_null=True, help_text="Who made the manifest.")
    actions = serializers.ListField(
        child=serializers.DictField(), help_text="The c2pa.actions assertion's actions."
    )
    generation = serializers.DictField(
        allow_null=True,
        help_text=f"Easel's '{GENERATION_ASSERTION}' assertion: image, job, model, template, "
        "seed and (unless its template is private) the prompt.",
    )
    manifest = serializers.DictField(
        allow_null=True, help_text="The active manifest as c2pa-rs reads it (every assertion)."
    )


class MetadataSerializer(serializers.Serializer):
    digital_source_type = serializers.CharField(required=False)
    credit = serializers.CharField(required=False)
    creator_tool = serializers.CharField(required=False)
    image_id = serializers.CharField(required=False)
    image_url = serializers.CharField(required=False)


class WatermarkSerializer(serializers.Serializer):
    checked = serializers.BooleanField(help_text="False when the image is too small or large.")
    detected = serializers.BooleanField()
    id = serializers.CharField(allow_null=True, help_text="12 hex digits: the image id's first.")
    image = serializers.UUIDField(
        allow_null=True, help_text="Your organization's image with this watermark, if any."
    )
    reason = serializers.CharField(help_text="Why the image was not checked.")


class VerificationSerializer(serializers.Serializer):
    format = serializers.CharField(help_text="The file's type, from its content.")
    content_credentials = ContentCredentialsSerializer()
    metadata = MetadataSerializer(help_text="IPTC/XMP fields, for tools that do not read C2PA.")
    watermark = WatermarkSerializer()


def _image_with_watermark(org: Organization, mark: str) -> uuid.UUID | None:
    """The organization's image whose id starts with the watermark's 12 hex digits."""
    low, high = uuid.UUID(mark + "0" * 20), uuid.UUID(mark + "f" * 20)
    found = (
        selectors.generated_image_list_for_org(org=org)
        .filter(id__gte=low, id__lte=high)
        .order_by("created_at")
        .values_list("id", flat=True)
        .first()
    )
    return found


def _body(result: Verification, org: Organization) -> dict[str, Any]:
    report = result.credentials
    manifest = report.manifest or {}
    actions = assertion(report.manifest, "c2pa.actions") or {}
    generator = next(iter(manifest.get("claim_generator_info") or []), None)
    mark = result.watermark
    return {
        "format": result.mime_type,
        "content_credentials": {
            "present": report.present,
            "valid": report.valid,
            "trusted": report.trusted,
            "signature_valid": report.signature_valid,
            "hash_valid": report.hash_valid,
            "state": report.state,
            "failures": report.failures,
            "error": report.error,
            "generator": (
                f"{generator.get('name', '')} {generator.get('version', '')}".strip()
                if isinstance(generator, dict)
                else None
            ),
            "actions": list(actions.get("actions") or []),
            "generation": assertion(report.manifest, GENERATION_ASSERTION),
            "manifest": report.manifest,
        },
        "metadata": result.metadata,
        "watermark": {
            "checked": mark.checked,
            "detected": mark.id is not None,
            "id": mark.id,
            "image": _image_with_watermark(org, mark.id) if mark.id else None,
            "reason": mark.reason,
        },
    }


class ProvenanceVerifyView(APIView):
    parser_classes = [MultiPartParser, FormParser]
    required_actions = {"post": Action.VIEW}

    @extend_schema(
        request={"multipart/form-data": VerifyUploadSerializer},
        responses={200: VerificationSerializer},
        description="What an image says about where it came from. A 200 for any readable "
        "image, with or without credentials: `content_credentials.valid` is the verdict; a file "
        "that is not an image (or is over the upload limits) is a 400 naming why.",
    )
    def post(self, request: Request) -> Response:
        s = VerifyUploadSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        upload = s.validated_data["file"]
        name = upload.name or "upload"
        data = read_upload(upload)
        refused = image_file_check(name, data)
        if refused:
            raise serializers.ValidationError({"file": [refused]})
        result = image_verify(data=data)
        return Response(VerificationSerializer(_body(result, request.principal.org)).data)


urlpatterns = [
    path("provenance/verify", ProvenanceVerifyView.as_view(), name="provenance-verify"),
]
