"""Hostile prompts (``POST /api/v1/generations`` and the studio's generate form): control characters
(terminal escapes, NUL, DEL, C1) and bidirectional overrides are refused naming the field and the
characters; a prompt over its length, or a template rendered past the rendered-prompt limit, is a
400 naming the field. Nothing is created or queued. Tabs and line breaks are folded to spaces, and
ordinary Unicode (accents, emoji sequences) passes untouched."""

from __future__ import annotations

from collections.abc import Iterator
from unittest import mock

import pytest

from generation.models import GenerationJob
from generation.protocol import MAX_PROMPT_CHARS, MAX_RENDERED_PROMPT_CHARS
from generation.template_services import prompt_template_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(tiny_base_model) -> Iterator[mock.MagicMock]:  # type: ignore[no-untyped-def]
    with mock.patch("generation.tasks.enqueue_generation") as enqueue:
        yield enqueue


def _create(client, **body):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/generations", {"model": "tiny", **body}, format="json")


CONTROL = [
    ("\x1b[2J\x1b[31mred", "U+001B"),
    ("ding\x07", "U+0007"),
    ("back\x08space", "U+0008"),
    ("del\x7f", "U+007F"),
    ("c1 \x9b31m", "U+009B"),
    ("apple \u202egnp.exe", "U+202E"),
    ("isolate \u2066x\u2069", "U+2066, U+2069"),
]


@pytest.mark.parametrize("field", ["prompt", "negative_prompt", "variables"])
@pytest.mark.parametrize(("text", "named"), CONTROL, ids=[n for _t, n in CONTROL])
def test_control_characters_are_refused_naming_the_field_and_the_characters(
    owner, client_for, queued, field, text, named
):
    if field == "variables":
        prompt_template_create(actor=owner.principal, application="hero", text="a {item}")
        body = {"template": "hero", "variables": {"item": text}}
    else:
        body = {"prompt": "an apple", field: text}
    response = _create(client_for(owner), **body)
    assert response.status_code == 400, response.content
    message = response.json()["error"]["fields"][field]
    assert f"contains control characters ({named}); remove them." in message
    assert not GenerationJob.objects.exists() and not queued.called


def test_a_nul_character_is_refused_too(owner, client_for, queued):
    response = _create(client_for(owner), prompt="an apple\x00")
    assert response.status_code == 400
    assert "Null characters are not allowed" in response.json()["error"]["fields"]["prompt"]
    assert not GenerationJob.objects.exists()


def test_tabs_and_line_breaks_are_folded_and_ordinary_unicode_passes(owner, client_for, queued):
    prompt = "a crème brûlée\ton a\r\nplate, 👩\u200d🍳 style, 東京"
    response = _create(client_for(owner), prompt=prompt, negative_prompt="blur,\nnoise")
    assert response.status_code == 202, response.content
    job = GenerationJob.objects.get()
    assert job.prompt.startswith("a crème brûlée on a plate, 👩\u200d🍳 style, 東京")
    queued.assert_called_once()


def test_an_over_long_prompt_is_a_400_naming_it(owner, client_for, queued):
    response = _create(client_for(owner), prompt="x" * (MAX_PROMPT_CHARS + 1))
    assert response.status_code == 400
    assert f"no more than {MAX_PROMPT_CHARS}" in response.json()["error"]["fields"]["prompt"]
    assert not GenerationJob.objects.exists()


def test_a_template_rendered_past_the_limit_is_a_400_naming_the_variables(
    owner, client_for, queued
):
    names = [f"v{i}" for i in range(10)]
    prompt_template_create(
        actor=owner.principal, application="long", text=" ".join(f"{{{n}}}" for n in names)
    )
    response = _create(
        client_for(owner), template="long", variables=dict.fromkeys(names, "w" * 500)
    )
    assert response.status_code == 400, response.content
    message = response.json()["error"]["fields"]["variables"]
    assert f"above {MAX_RENDERED_PROMPT_CHARS}; shorten the values" in message
    assert not GenerationJob.objects.exists() and not queued.called


def test_the_studio_form_refuses_control_characters_with_the_same_message(owner, client, queued):
    client.force_login(owner.user)
    response = client.post("/studio/generate/", {"target": "model:tiny", "prompt": "\x1b[2Jx"})
    assert response.status_code == 400
    assert "contains control characters (U+001B); remove them." in response.content.decode()
    assert not GenerationJob.objects.exists()
