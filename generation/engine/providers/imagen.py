"""Google's Imagen on Vertex AI (the ``:predict`` REST shape) behind the unified protocol.

``POST {base_url}/v1/projects/{project}/locations/{location}/publishers/google/models/``
``{model}:predict`` with ``Authorization: Bearer <access token>`` and::

    {"instances": [{"prompt": ...}],
     "parameters": {"sampleCount": n, "aspectRatio": "16:9", "negativePrompt": ...,
                    "seed": ..., "addWatermark": false}}

Translation: ``width``×``height`` → the nearest supported ``aspectRatio`` (1:1, 9:16, 16:9, 3:4,
4:3; Imagen picks the pixel size); ``num_images`` → ``sampleCount`` in requests of at most 4, the
*k*-th request seeded ``seed + 4k``; ``negative_prompt`` → ``negativePrompt`` (omitted when
empty); ``seed`` → ``seed`` (Imagen honours a seed only without its watermark, hence
``addWatermark: false``); ``steps``, ``cfg_scale`` and ``scheduler`` are not supported and are
listed under ``meta["not_applied"]``. The answer's ``predictions[].bytesBase64Encoded`` are the
images; a prediction with ``raiFilteredReason`` was withheld by Google's safety filter.

The access token is either ``access_token`` in the config or read from ``access_token_file`` on
every request (so a sidecar such as ``gcloud auth print-access-token`` can refresh it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .base import (
    DEFAULT_TIMEOUT_S,
    ProviderError,
    ProviderImage,
    RenderRequest,
    decode_png,
    post_json,
)

ASPECT_RATIOS: tuple[str, ...] = ("1:1", "9:16", "16:9", "3:4", "4:3")
MAX_SAMPLES_PER_REQUEST = 4


def nearest_aspect_ratio(width: int, height: int) -> str:
    wanted = math.log(width / height)

    def distance(ratio: str) -> float:
        w, _, h = ratio.partition(":")
        return abs(math.log(int(w) / int(h)) - wanted)

    return min(ASPECT_RATIOS, key=distance)


@dataclass(frozen=True)
class ImagenAdapter:
    name: str
    project: str
    location: str = "us-central1"
    model: str = "imagen-3.0-generate-002"
    base_url: str = ""
    access_token: str = field(default="", repr=False)
    access_token_file: str = ""
    timeout_s: float = DEFAULT_TIMEOUT_S

    @classmethod
    def from_config(cls, name: str, config: Mapping[str, Any]) -> ImagenAdapter:
        missing = [key for key in ("project",) if not config.get(key)]
        if not config.get("access_token") and not config.get("access_token_file"):
            missing.append("access_token or access_token_file")
        if missing:
            raise ValueError(f"Provider '{name}' (imagen) needs {', '.join(missing)}.")
        return cls(
            name=name,
            project=str(config["project"]),
            location=str(config.get("location") or "us-central1"),
            model=str(config.get("model") or "imagen-3.0-generate-002"),
            base_url=str(config.get("base_url") or ""),
            access_token=str(config.get("access_token") or ""),
            access_token_file=str(config.get("access_token_file") or ""),
            timeout_s=float(config.get("timeout_s") or DEFAULT_TIMEOUT_S),
        )

    @property
    def url(self) -> str:
        base = (self.base_url or f"https://{self.location}-aiplatform.googleapis.com").rstrip("/")
        return (
            f"{base}/v1/projects/{self.project}/locations/{self.location}"
            f"/publishers/google/models/{self.model}:predict"
        )

    def _token(self) -> str:
        if self.access_token:
            return self.access_token
        try:
            token = Path(self.access_token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ProviderError(
                f"Cannot read the access token file of provider '{self.name}': {exc.strerror}.",
                provider=self.name,
            ) from None
        if not token:
            raise ProviderError(
                f"The access token file of provider '{self.name}' is empty.", provider=self.name
            )
        return token

    def request_bodies(self, request: RenderRequest) -> list[dict[str, Any]]:
        """The JSON bodies this adapter POSTs for ``request`` (at most 4 samples each)."""
        bodies = []
        for offset in range(0, request.num_images, MAX_SAMPLES_PER_REQUEST):
            parameters: dict[str, Any] = {
                "sampleCount": min(MAX_SAMPLES_PER_REQUEST, request.num_images - offset),
                "aspectRatio": nearest_aspect_ratio(request.width, request.height),
                "seed": (request.seed + offset) % 2**32,
                "addWatermark": False,
            }
            if request.negative_prompt.strip():
                parameters["negativePrompt"] = request.negative_prompt.strip()
            bodies.append({"instances": [{"prompt": request.prompt}], "parameters": parameters})
        return bodies

    def generate(self, request: RenderRequest) -> list[ProviderImage]:
        headers = {"Authorization": f"Bearer {self._token()}"}
        images: list[ProviderImage] = []
        filtered: list[str] = []
        for body in self.request_bodies(request):
            answer = post_json(
                self.url, provider=self.name, headers=headers, body=body, timeout_s=self.timeout_s
            )
            predictions = answer.get("predictions") or []
            if not isinstance(predictions, list):
                raise ProviderError(
                    f"{self.name} answered without a 'predictions' list.", provider=self.name
                )
            for index, prediction in enumerate(predictions):
                if not isinstance(prediction, dict):
                    continue
                if prediction.get("raiFilteredReason"):
                    filtered.append(str(prediction["raiFilteredReason"]))
                    continue
                images.append(self._image(prediction, body, index=index))
        if not images:
            reason = f" (filtered: {'; '.join(filtered)})" if filtered else ""
            raise ProviderError(f"{self.name} returned no images{reason}.", provider=self.name)
        return images

    def _image(
        self, prediction: dict[str, Any], body: dict[str, Any], *, index: int
    ) -> ProviderImage:
        encoded = prediction.get("bytesBase64Encoded")
        if not encoded:
            raise ProviderError(
                f"{self.name} answered a prediction without 'bytesBase64Encoded'.",
                provider=self.name,
            )
        png, width, height = decode_png(encoded, provider=self.name)
        parameters = body["parameters"]
        return ProviderImage(
            png_bytes=png,
            seed=parameters["seed"],
            width=width,
            height=height,
            meta={
                "provider": self.name,
                "kind": "imagen",
                "model": self.model,
                "aspect_ratio": parameters["aspectRatio"],
                "sample_index": index,
                "seed_applied": True,
                "not_applied": ["steps", "cfg_scale", "scheduler"],
            },
        )
