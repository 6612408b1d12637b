"""An OpenAI-compatible images API (``POST /v1/images/generations``) behind the unified protocol.

Translation:

- ``width``×``height`` → ``size``: the model's allowed size nearest in aspect ratio, then in
  area (``gpt-image-1``: 1024x1024, 1536x1024, 1024x1536; ``dall-e-3``: 1024x1024, 1792x1024,
  1024x1792; ``dall-e-2``: 256/512/1024 squares; other models: the configured ``sizes``, else the
  requested size as is, for compatible servers that take any size);
- ``num_images`` → ``n`` (``dall-e-3`` takes ``n=1`` only, so it gets one request per image);
- ``negative_prompt`` → folded into the prompt as ``Avoid: …`` (the API has no negative prompt);
- style → already part of the rendered prompt;
- ``response_format=b64_json`` for DALL·E models (``gpt-image-*`` always answer base64 and refuse
  the parameter);
- ``seed``, ``steps``, ``cfg_scale``, ``scheduler`` → not supported; the seed is still recorded
  (``seed + i`` for image *i*) and each image's ``meta`` says ``seed_applied: false``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .base import (
    DEFAULT_TIMEOUT_S,
    ProviderError,
    ProviderImage,
    RenderRequest,
    decode_png,
    post_json,
)

MODEL_SIZES: dict[str, tuple[str, ...]] = {
    "gpt-image-1": ("1024x1024", "1536x1024", "1024x1536"),
    "dall-e-3": ("1024x1024", "1792x1024", "1024x1792"),
    "dall-e-2": ("256x256", "512x512", "1024x1024"),
}
ONE_IMAGE_PER_REQUEST = frozenset({"dall-e-3"})


def _parse_size(size: str) -> tuple[int, int]:
    width, _, height = size.partition("x")
    return int(width), int(height)


def nearest_size(width: int, height: int, sizes: tuple[str, ...]) -> str:
    """The allowed size closest to ``width``×``height`` in aspect ratio, then in area."""
    ratio, area = math.log(width / height), math.log(width * height)

    def distance(size: str) -> tuple[float, float]:
        w, h = _parse_size(size)
        return (round(abs(math.log(w / h) - ratio), 6), abs(math.log(w * h) - area))

    return min(sizes, key=distance)


def fold_negative_prompt(prompt: str, negative_prompt: str) -> str:
    negative = negative_prompt.strip()
    return f"{prompt}\n\nAvoid: {negative}" if negative else prompt


@dataclass(frozen=True)
class OpenAIImagesAdapter:
    name: str
    base_url: str
    api_key: str = field(repr=False)
    model: str = "gpt-image-1"
    sizes: tuple[str, ...] = ()
    timeout_s: float = DEFAULT_TIMEOUT_S

    @classmethod
    def from_config(cls, name: str, config: Mapping[str, Any]) -> OpenAIImagesAdapter:
        missing = [key for key in ("base_url", "api_key") if not config.get(key)]
        if missing:
            raise ValueError(f"Provider '{name}' (openai) needs {', '.join(missing)}.")
        return cls(
            name=name,
            base_url=str(config["base_url"]),
            api_key=str(config["api_key"]),
            model=str(config.get("model") or "gpt-image-1"),
            sizes=tuple(config.get("sizes") or ()),
            timeout_s=float(config.get("timeout_s") or DEFAULT_TIMEOUT_S),
        )

    @property
    def url(self) -> str:
        base = self.base_url.rstrip("/")
        return (
            f"{base}/images/generations"
            if base.endswith("/v1")
            else f"{base}/v1/images/generations"
        )

    def size_for(self, width: int, height: int) -> str:
        sizes = self.sizes or MODEL_SIZES.get(self.model, ())
        return nearest_size(width, height, sizes) if sizes else f"{width}x{height}"

    def request_bodies(self, request: RenderRequest) -> list[dict[str, Any]]:
        """The JSON bodies this adapter POSTs for ``request`` (one, or one per image)."""
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": fold_negative_prompt(request.prompt, request.negative_prompt),
            "size": self.size_for(request.width, request.height),
        }
        if not self.model.startswith("gpt-image"):
            body["response_format"] = "b64_json"
        if self.model in ONE_IMAGE_PER_REQUEST:
            return [body | {"n": 1} for _ in range(request.num_images)]
        return [body | {"n": request.num_images}]

    def generate(self, request: RenderRequest) -> list[ProviderImage]:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        images: list[ProviderImage] = []
        for body in self.request_bodies(request):
            answer = post_json(
                self.url, provider=self.name, headers=headers, body=body, timeout_s=self.timeout_s
            )
            items = answer.get("data")
            if not isinstance(items, list):
                raise ProviderError(
                    f"{self.name} answered without a 'data' list.", provider=self.name
                )
            for item in items:
                images.append(self._image(item, body, index=len(images), request=request))
        if not images:
            raise ProviderError(f"{self.name} returned no images.", provider=self.name)
        return images

    def _image(
        self, item: Any, body: dict[str, Any], *, index: int, request: RenderRequest
    ) -> ProviderImage:
        encoded = item.get("b64_json") if isinstance(item, dict) else None
        if not encoded:
            raise ProviderError(
                f"{self.name} answered without 'b64_json' image data (a URL answer is not "
                "accepted; the adapter asks for base64).",
                provider=self.name,
            )
        png, width, height = decode_png(encoded, provider=self.name)
        return ProviderImage(
            png_bytes=png,
            seed=(request.seed + index) % 2**32,
            width=width,
            height=height,
            meta={
                "provider": self.name,
                "kind": "openai",
                "model": self.model,
                "size": body["size"],
                "seed_applied": False,
                "negative_prompt": "folded into prompt" if request.negative_prompt else "",
                "not_applied": ["seed", "steps", "cfg_scale", "scheduler"],
                "revised_prompt": item.get("revised_prompt") or "",
            },
        )
