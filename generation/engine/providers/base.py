"""What every backend takes and returns, and the HTTP plumbing the hosted-model adapters share.

``RenderRequest`` is the protocol's fully resolved parameters for one generation (prompt already
rendered, style applied, size and seed chosen); ``ProviderImage`` is one image with the seed and
size it was made with and ``meta`` saying what the backend did with each parameter (for example
``{"seed_applied": False}`` where a provider has no seed).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from dataclasses import dataclass, field
from typing import Any

import requests
from PIL import Image

DEFAULT_TIMEOUT_S = 120.0
CONNECT_TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 128 * 1024 * 1024
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})


@dataclass(frozen=True)
class RenderRequest:
    prompt: str
    negative_prompt: str
    width: int
    height: int
    steps: int
    cfg_scale: float
    seed: int
    num_images: int
    scheduler: str
    style: str = ""


@dataclass(frozen=True)
class ProviderImage:
    png_bytes: bytes = field(repr=False)
    seed: int
    width: int
    height: int
    meta: dict[str, Any] = field(default_factory=dict)


class ProviderError(Exception):
    """A hosted model refused or failed a request.

    ``retryable`` is true for rate limits (429), timeouts, connection errors and 5xx: the same
    request may succeed later. Other 4xx mean the request itself must change.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        retryable: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.retryable = retryable
        self.retry_after_s = retry_after_s


def _error_message(content: bytes, reason: str) -> str:
    """The provider's own message: OpenAI and Google both answer ``{"error": {"message"}}``."""
    try:
        body = json.loads(content)
    except ValueError:
        return content[:500].decode("utf-8", "replace").strip() or reason or "no message"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])[:500]
    if isinstance(error, str):
        return error[:500]
    return json.dumps(body)[:500]


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return float(value)
    except ValueError:
        return None


def post_json(
    url: str,
    *,
    provider: str,
    headers: dict[str, str],
    body: dict[str, Any],
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> dict[str, Any]:
    """POST ``body`` as JSON and return the JSON answer, or raise a ``ProviderError``."""
    try:
        response = requests.post(
            url,
            json=body,
            headers={"Accept": "application/json", **headers},
            timeout=(CONNECT_TIMEOUT_S, timeout_s),
            stream=True,
        )
    except requests.Timeout:
        raise ProviderError(
            f"{provider} did not answer within {timeout_s:.0f} s; try again later.",
            provider=provider,
            retryable=True,
        ) from None
    except requests.ConnectionError as exc:
        raise ProviderError(
            f"Could not connect to {provider} at {url}: {exc.__class__.__name__}.",
            provider=provider,
            retryable=True,
        ) from None
    with response:
        content = b""
        for chunk in response.iter_content(chunk_size=1 << 20):
            content += chunk
            if len(content) > MAX_RESPONSE_BYTES:
                raise ProviderError(
                    f"{provider} answered with more than {MAX_RESPONSE_BYTES} bytes.",
                    provider=provider,
                )
        if response.status_code >= 400:
            status = response.status_code
            raise ProviderError(
                f"{provider} returned HTTP {status}: {_error_message(content, response.reason)}",
                provider=provider,
                status=status,
                retryable=status in RETRYABLE_STATUSES or status >= 500,
                retry_after_s=_retry_after(response),
            )
        try:
            data = json.loads(content)
        except ValueError:
            raise ProviderError(
                f"{provider} answered HTTP {response.status_code} with a body that is not JSON.",
                provider=provider,
                status=response.status_code,
            ) from None
    if not isinstance(data, dict):
        raise ProviderError(f"{provider} answered JSON that is not an object.", provider=provider)
    return data


def to_png(data: bytes, *, provider: str) -> tuple[bytes, int, int]:
    """``data`` as PNG bytes with its width and height (JPEG/WebP answers are converted)."""
    try:
        with Image.open(io.BytesIO(data), formats=["PNG", "JPEG", "WEBP"]) as image:
            width, height = image.size
            if image.format == "PNG":
                return data, width, height
            out = io.BytesIO()
            image.convert("RGB").save(out, format="PNG")
            return out.getvalue(), width, height
    except (OSError, Image.DecompressionBombError) as exc:
        raise ProviderError(
            f"{provider} returned data that is not a PNG, JPEG or WebP image ({exc}).",
            provider=provider,
        ) from None


def decode_png(encoded: str, *, provider: str) -> tuple[bytes, int, int]:
    """A base64 image from a provider's JSON answer as PNG bytes with its width and height."""
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ProviderError(f"{provider} sent invalid base64.", provider=provider) from None
    return to_png(raw, provider=provider)
