"""Hosted-model adapters and the translation layer. Each adapter talks to a small HTTP server the
test starts on 127.0.0.1; the server checks the path and credentials it expects and records the
request, and the test asserts on the translated JSON."""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.test import override_settings
from PIL import Image

from generation.backends import (
    ProviderTarget,
    backend_for,
    provider_target,
    render_request_for,
    resolve_generation_target,
)
from generation.engine.providers import (
    ImagenAdapter,
    OpenAIImagesAdapter,
    ProviderError,
    RenderRequest,
)
from generation.engine.providers.imagen import nearest_aspect_ratio
from generation.engine.providers.openai_images import MODEL_SIZES, nearest_size
from generation.protocol import GenerationRequestSerializer, resolve_params


def png(width: int = 16, height: int = 8, color: str = "red", fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format=fmt)
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class FakeProvider:
    """An HTTP server that answers POSTs on one path with a bearer token, and records them."""

    path: str
    token: str
    answer: Callable[[dict[str, Any]], tuple[int, dict[str, Any], dict[str, str]]]
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    hold: bool = False
    url: str = ""

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                if fake.hold:
                    fake.release.wait(timeout=10)
                if self.path != fake.path:
                    return self._send(404, {"error": {"message": f"no route {self.path}"}}, {})
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    return self._send(401, {"error": {"message": "bad credentials"}}, {})
                if self.headers.get("Content-Type") != "application/json":
                    return self._send(415, {"error": {"message": "json please"}}, {})
                body = json.loads(raw)
                fake.requests.append(body)
                self._send(*fake.answer(body))

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler


@pytest.fixture
def serve() -> Iterator[Callable[..., FakeProvider]]:
    servers: list[tuple[ThreadingHTTPServer, FakeProvider]] = []

    def start(
        path: str, token: str, answer: Callable[..., Any], hold: bool = False
    ) -> FakeProvider:
        fake = FakeProvider(path=path, token=token, answer=answer, hold=hold)
        server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
        fake.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append((server, fake))
        return fake

    yield start
    for server, fake in servers:
        fake.release.set()
        server.shutdown()
        server.server_close()


def request(**overrides: Any) -> RenderRequest:
    values = {
        "prompt": "a jar of honey, soft studio lighting",
        "negative_prompt": "blurry, text",
        "width": 1024,
        "height": 1024,
        "steps": 30,
        "cfg_scale": 7.0,
        "seed": 1234,
        "num_images": 1,
        "scheduler": "ddim",
    }
    return RenderRequest(**(values | overrides))


def openai_answer(count_from: Callable[[dict], int] = lambda body: body["n"]) -> Callable:
    def answer(body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        data = [{"b64_json": b64(png(24, 16))} for _ in range(count_from(body))]
        return 200, {"created": 1, "data": data}, {}

    return answer


# --- OpenAI-compatible images API ---------------------------------------------------------------


def test_openai_request_is_translated(serve):
    fake = serve("/v1/images/generations", "sk-test", openai_answer())
    adapter = OpenAIImagesAdapter(name="dalle", base_url=fake.url, api_key="sk-test")
    images = adapter.generate(request(width=1368, height=768, num_images=2, seed=41))
    assert fake.requests == [
        {
            "model": "gpt-image-1",
            "prompt": "a jar of honey, soft studio lighting\n\nAvoid: blurry, text",
            "size": "1536x1024",
            "n": 2,
        }
    ]
    assert [i.seed for i in images] == [41, 42]
    assert all(i.png_bytes.startswith(b"\x89PNG") for i in images)
    assert (images[0].width, images[0].height) == (24, 16)
    assert images[0].meta["seed_applied"] is False
    assert images[0].meta["negative_prompt"] == "folded into prompt"


def test_dalle3_gets_one_request_per_image_and_asks_for_base64(serve):
    fake = serve("/v1/images/generations", "k", openai_answer())
    adapter = OpenAIImagesAdapter(
        name="d3", base_url=f"{fake.url}/v1/", api_key="k", model="dall-e-3"
    )
    images = adapter.generate(request(width=768, height=1368, num_images=3, negative_prompt=""))
    assert len(fake.requests) == 3 and len(images) == 3
    assert {json.dumps(r, sort_keys=True) for r in fake.requests} == {
        json.dumps(
            {
                "model": "dall-e-3",
                "prompt": "a jar of honey, soft studio lighting",
                "size": "1024x1792",
                "n": 1,
                "response_format": "b64_json",
            },
            sort_keys=True,
        )
    }


@pytest.mark.parametrize(
    ("model", "width", "height", "expected"),
    [
        ("gpt-image-1", 512, 512, "1024x1024"),
        ("gpt-image-1", 1184, 888, "1536x1024"),
        ("gpt-image-1", 888, 1184, "1024x1536"),
        ("dall-e-3", 1536, 1024, "1792x1024"),
        ("dall-e-2", 256, 256, "256x256"),
        ("dall-e-2", 600, 600, "512x512"),
        ("dall-e-2", 1368, 768, "1024x1024"),
    ],
)
def test_openai_size_is_the_nearest_allowed(model, width, height, expected):
    assert nearest_size(width, height, MODEL_SIZES[model]) == expected


def test_openai_compatible_server_with_unknown_model_gets_the_exact_size(serve):
    fake = serve("/v1/images/generations", "k", openai_answer())
    adapter = OpenAIImagesAdapter(name="local", base_url=fake.url, api_key="k", model="sd-turbo")
    adapter.generate(request(width=640, height=384))
    assert fake.requests[0]["size"] == "640x384"


def test_openai_jpeg_answers_become_png(serve):
    fake = serve(
        "/v1/images/generations",
        "k",
        lambda body: (200, {"data": [{"b64_json": b64(png(40, 32, fmt="JPEG"))}]}, {}),
    )
    (image,) = OpenAIImagesAdapter(name="o", base_url=fake.url, api_key="k").generate(request())
    assert image.png_bytes.startswith(b"\x89PNG") and (image.width, image.height) == (40, 32)


def test_openai_url_answer_is_a_clear_error(serve):
    fake = serve(
        "/v1/images/generations", "k", lambda b: (200, {"data": [{"url": "http://x"}]}, {})
    )
    with pytest.raises(ProviderError, match="b64_json"):
        OpenAIImagesAdapter(name="o", base_url=fake.url, api_key="k").generate(request())


@pytest.mark.parametrize(
    ("status", "retryable"), [(400, False), (401, False), (429, True), (500, True), (503, True)]
)
def test_http_errors_carry_status_provider_message_and_retryability(serve, status, retryable):
    fake = serve(
        "/v1/images/generations",
        "k",
        lambda body: (
            status,
            {"error": {"message": "Your prompt was rejected"}},
            {"Retry-After": "7"},
        ),
    )
    with pytest.raises(ProviderError) as info:
        OpenAIImagesAdapter(name="dalle", base_url=fake.url, api_key="k").generate(request())
    error = info.value
    assert (error.status, error.retryable, error.provider) == (status, retryable, "dalle")
    assert f"HTTP {status}" in str(error) and "Your prompt was rejected" in str(error)
    assert error.retry_after_s == 7.0


def test_wrong_credentials_are_refused_by_the_server(serve):
    fake = serve("/v1/images/generations", "right", openai_answer())
    with pytest.raises(ProviderError, match="bad credentials") as info:
        OpenAIImagesAdapter(name="o", base_url=fake.url, api_key="wrong").generate(request())
    assert info.value.status == 401 and not info.value.retryable


def test_timeout_is_retryable(serve):
    fake = serve("/v1/images/generations", "k", openai_answer(), hold=True)
    adapter = OpenAIImagesAdapter(name="slow", base_url=fake.url, api_key="k", timeout_s=0.3)
    with pytest.raises(ProviderError, match="did not answer") as info:
        adapter.generate(request())
    assert info.value.retryable


def test_unreachable_provider_is_retryable():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    adapter = OpenAIImagesAdapter(name="down", base_url=f"http://127.0.0.1:{port}", api_key="k")
    with pytest.raises(ProviderError, match="Could not connect") as info:
        adapter.generate(request())
    assert info.value.retryable


def test_api_key_is_not_in_the_adapters_repr():
    assert "sk-secret" not in repr(OpenAIImagesAdapter(name="o", base_url="u", api_key="sk-secret"))


# --- Imagen on Vertex AI ------------------------------------------------------------------------

IMAGEN_PATH = (
    "/v1/projects/acme-img/locations/europe-west4/publishers/google/models/"
    "imagen-3.0-generate-002:predict"
)


def imagen_answer(body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    count = body["parameters"]["sampleCount"]
    predictions = [
        {"bytesBase64Encoded": b64(png(32, 18)), "mimeType": "image/png"} for _ in range(count)
    ]
    return 200, {"predictions": predictions}, {}


def imagen(fake: FakeProvider, **kw: Any) -> ImagenAdapter:
    values = {
        "name": "imagen",
        "project": "acme-img",
        "location": "europe-west4",
        "base_url": fake.url,
        "access_token": "ya29.token",
    }
    return ImagenAdapter(**(values | kw))


def test_imagen_predict_request_is_translated(serve):
    fake = serve(IMAGEN_PATH, "ya29.token", imagen_answer)
    images = imagen(fake).generate(request(width=1368, height=768, num_images=6, seed=100))
    assert fake.requests == [
        {
            "instances": [{"prompt": "a jar of honey, soft studio lighting"}],
            "parameters": {
                "sampleCount": 4,
                "aspectRatio": "16:9",
                "negativePrompt": "blurry, text",
                "seed": 100,
                "addWatermark": False,
            },
        },
        {
            "instances": [{"prompt": "a jar of honey, soft studio lighting"}],
            "parameters": {
                "sampleCount": 2,
                "aspectRatio": "16:9",
                "negativePrompt": "blurry, text",
                "seed": 104,
                "addWatermark": False,
            },
        },
    ]
    assert len(images) == 6
    assert [i.seed for i in images] == [100] * 4 + [104] * 2
    assert images[0].meta["seed_applied"] is True and images[0].meta["aspect_ratio"] == "16:9"
    assert (images[0].width, images[0].height) == (32, 18)


def test_imagen_omits_an_empty_negative_prompt(serve):
    fake = serve(IMAGEN_PATH, "ya29.token", imagen_answer)
    imagen(fake).generate(request(negative_prompt="  "))
    assert "negativePrompt" not in fake.requests[0]["parameters"]


@pytest.mark.parametrize(
    ("width", "height", "ratio"),
    [
        (1024, 1024, "1:1"),
        (1184, 888, "4:3"),
        (888, 1184, "3:4"),
        (768, 1368, "9:16"),
        (1256, 840, "4:3"),
    ],
)
def test_imagen_aspect_ratio_is_the_nearest_supported(width, height, ratio):
    assert nearest_aspect_ratio(width, height) == ratio


def test_imagen_reads_the_token_file_on_each_request(serve, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("ya29.token\n")
    fake = serve(IMAGEN_PATH, "ya29.token", imagen_answer)
    adapter = imagen(fake, access_token="", access_token_file=str(token_file))
    assert len(adapter.generate(request())) == 1
    token_file.write_text("ya29.expired")
    with pytest.raises(ProviderError) as info:
        adapter.generate(request())
    assert info.value.status == 401


def test_imagen_all_filtered_names_the_reason(serve):
    fake = serve(
        IMAGEN_PATH,
        "ya29.token",
        lambda body: (200, {"predictions": [{"raiFilteredReason": "Filtered: person"}]}, {}),
    )
    with pytest.raises(ProviderError, match="Filtered: person"):
        imagen(fake).generate(request())


def test_imagen_config_needs_project_and_token():
    with pytest.raises(ValueError, match="project") as info:
        ImagenAdapter.from_config("img", {"kind": "imagen"})
    assert "access_token" in str(info.value)


# --- Translation layer --------------------------------------------------------------------------


def _validated(body: dict[str, Any]) -> dict[str, Any]:
    s = GenerationRequestSerializer(data=body)
    assert s.is_valid(), s.errors
    return s.validated_data


def test_switching_to_a_provider_changes_only_the_model_name(serve):
    fake = serve(IMAGEN_PATH, "ya29.token", imagen_answer)
    providers = {
        "imagen": {
            "kind": "imagen",
            "base_url": fake.url,
            "project": "acme-img",
            "location": "europe-west4",
            "access_token": "ya29.token",
        }
    }
    org = SimpleNamespace(default_model="tiny")
    body = {"prompt": "a pear", "style": "studio", "aspect_ratio": "3:4", "seed": 9}
    with override_settings(EASEL_PROVIDERS=providers):
        target = resolve_generation_target(org=org, model="imagen")
        assert isinstance(target, ProviderTarget) and target.kind == "imagen"
        params = resolve_params(
            org=org, data=_validated(body | {"model": "imagen"}), resolved_model=target
        )
        images = backend_for(target).generate(render_request_for(params))
    assert (params.family, params.base_model, params.width, params.height) == (
        "provider",
        "imagen",
        888,
        1184,
    )
    sent = fake.requests[0]
    assert sent["parameters"]["aspectRatio"] == "3:4" and sent["parameters"]["seed"] == 9
    assert sent["instances"][0]["prompt"].startswith("a pear, soft studio lighting")
    assert sent["parameters"]["negativePrompt"] == "clutter, harsh shadows"
    assert len(images) == 1


def test_the_organizations_default_model_may_be_a_provider():
    providers = {"dalle": {"kind": "openai", "base_url": "http://x", "api_key": "k"}}
    with override_settings(EASEL_PROVIDERS=providers):
        target = resolve_generation_target(org=SimpleNamespace(default_model="dalle"))
    assert isinstance(target, ProviderTarget) and target.name == "dalle"


def test_provider_sizes_are_bounded_by_the_provider_family():
    target = ProviderTarget(name="dalle", kind="openai", model="gpt-image-1")
    with pytest.raises(ValidationError) as info:
        resolve_params(
            org=None,
            data=_validated({"prompt": "p", "width": 64, "height": 64}),
            resolved_model=target,
        )
    assert "width" in info.value.message_dict


def test_misconfigured_providers_are_reported():
    with (
        override_settings(EASEL_PROVIDERS={"x": {"kind": "midjourney"}}),
        pytest.raises(ImproperlyConfigured, match="kind"),
    ):
        provider_target("x")
    with (
        override_settings(EASEL_PROVIDERS={"x": {"kind": "openai"}}),
        pytest.raises(ImproperlyConfigured, match="base_url, api_key"),
    ):
        backend_for(provider_target("x"))
