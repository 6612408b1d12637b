"""The provenance of the images a job stores (``finishing.store_and_succeed`` calls this): the
image's id, known before its row is written so the files can name it; the optional invisible
watermark; the PNG with its XMP packet and signed C2PA manifest; the thumbnail, signed as a
resize of the same image.

A template the organization marked private (``provenance.ProvenanceSettings.private_templates``)
keeps its prompt out of everything the files carry: the manifest, the XMP packet and the PNG's
text chunks (``prompt``, ``negative_prompt`` and the prompt inside ``parameters``).
"""

from __future__ import annotations

import functools
import io
import logging
import tomllib
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import timezone

from provenance.credentials import signer_for
from provenance.engine import watermark
from provenance.engine.manifest import ImageFacts, manifest_definition
from provenance.engine.xmp import PNG_KEY, xmp_packet
from provenance.selectors import ProvenancePolicy, provenance_policy_for_org

from . import storage

if TYPE_CHECKING:
    import c2pa
    from PIL import Image

    from .models import GenerationJob

logger = logging.getLogger(__name__)

PROMPT_KEYS = ("prompt", "negative_prompt")


def image_id_for(*, job_id: Any, index: int, attempt: int) -> uuid.UUID:
    """uuid5(job id, "<index>-<attempt>"): the same attempt stored again gets the same id."""
    return uuid.uuid5(uuid.UUID(str(job_id)), f"{index}-{attempt}")


@functools.cache
def easel_version() -> str:
    with open(settings.BASE_DIR / "pyproject.toml", "rb") as fh:
        return str(tomllib.load(fh)["project"]["version"])


def _without_prompts(metadata: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in metadata.items() if k not in PROMPT_KEYS}
    params = kept.get("parameters")
    if isinstance(params, dict):
        kept["parameters"] = {k: v for k, v in params.items() if k not in PROMPT_KEYS}
    return kept


@dataclass
class JobProvenance:
    """What one job's images carry; built once per job by ``job_provenance``."""

    job: GenerationJob
    policy: ProvenancePolicy
    signer: c2pa.Signer | None

    @property
    def private(self) -> bool:
        return self.policy.template_is_private(self.job.params.get("template_application"))

    def facts(self, *, image_id: uuid.UUID, seed: int) -> ImageFacts:
        job = self.job
        base = job.base_model
        version = job.model_version
        return ImageFacts(
            image_id=str(image_id),
            job_id=str(job.id),
            generator_version=easel_version(),
            created_at=timezone.now(),
            credit=f"{job.organization.name} (generated with Easel)",
            image_url=f"{settings.EASEL_PUBLIC_URL}/api/v1/images/{image_id}",
            model_family=str(job.params.get("family") or (base.family if base else job.backend)),
            base_model=base.name if base else job.backend,
            model_version_id=version.pk if version else None,
            template_application=job.params.get("template_application"),
            template_version=job.template_version,
            seed=seed,
            prompt=None if self.private else job.prompt,
            negative_prompt=None if self.private else job.params.get("negative_prompt") or "",
        )

    def watermarked(self, image: Image.Image, *, image_id: uuid.UUID) -> Image.Image:
        """``image`` with the watermark when the organization wants one and the image is large
        enough to hold it; otherwise ``image`` itself."""
        if not self.policy.watermark:
            return image
        if not watermark.fits(image.width, image.height):
            logger.info(
                "image %s of job %s is %s×%s, below the watermark's %s pixels: not marked",
                image_id,
                self.job.id,
                image.width,
                image.height,
                watermark.MIN_PIXELS,
            )
            return image
        return watermark.embed(image, watermark.watermark_id(image_id))

    def png(self, image: Image.Image, metadata: dict[str, Any], *, image_id: uuid.UUID) -> bytes:
        """The PNG to store: ``metadata`` as text chunks (prompts removed for a private
        template), the XMP packet, and the signed manifest."""
        facts = self.facts(image_id=image_id, seed=int(metadata.get("seed") or 0))
        chunks = _without_prompts(metadata) if self.private else dict(metadata)
        chunks[PNG_KEY] = xmp_packet(facts)
        data = storage.encode_png(image, chunks)
        return self._signed(data, facts, mime_type="image/png")

    def thumbnail(self, image: Image.Image, *, image_id: uuid.UUID, seed: int) -> bytes:
        """The WebP thumbnail, signed as a resize of the image."""
        data = storage.encode_thumbnail(image)
        from PIL import Image as PILImage

        with PILImage.open(io.BytesIO(data)) as thumb:
            size = thumb.size
        facts = self.facts(image_id=image_id, seed=seed)
        return self._signed(data, facts, mime_type="image/webp", resized_to=size)

    def _signed(
        self,
        data: bytes,
        facts: ImageFacts,
        *,
        mime_type: str,
        resized_to: tuple[int, int] | None = None,
    ) -> bytes:
        if self.signer is None:
            return data
        from provenance.engine.content_credentials import sign

        definition = manifest_definition(facts, mime_type=mime_type, resized_to=resized_to)
        return sign(data, mime_type=mime_type, definition=definition, signer=self.signer)


def job_provenance(job: GenerationJob) -> JobProvenance:
    """The job's organization's policy and signer (``ImproperlyConfigured`` when signing is on
    and no certificate is configured: the message says what to set)."""
    return JobProvenance(
        job=job,
        policy=provenance_policy_for_org(org_id=job.organization_id),
        signer=signer_for(org_slug=job.organization.slug),
    )
