"""The client is built against the OpenAPI schema and stays so: every field its typed responses
name is in the schema component they mirror, and every request its methods send is a path and
method the schema documents. A renamed field or route fails here, not in a team's script."""

from __future__ import annotations

import dataclasses
import io
import re

import httpx
import pytest
from easel_client import Easel
from easel_client.types import ALL_TYPES


@pytest.fixture(scope="module")
def schema() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda cls: cls.__name__)
def test_every_typed_field_is_a_property_of_its_schema_component(schema, cls):
    component = schema["components"]["schemas"][cls.SCHEMA]
    names = [f.name for f in dataclasses.fields(cls) if f.name != "raw"]
    assert [n for n in names if n not in component["properties"]] == []


def _recording_client() -> tuple[Easel, list[tuple[str, str]]]:
    sent: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append((request.method, request.url.path))
        if request.method == "GET" and request.url.path == "/api/v1/categories":
            return httpx.Response(200, json=[])
        return httpx.Response(200, json={"results": [], "next": None, "prompt": ""})

    transport = httpx.MockTransport(handler)
    return Easel(api_key="esl_k", base_url="http://easel.test", transport=transport), sent


def _call_every_method(easel: Easel) -> None:
    job, run = "5f0c8d1e-0000-4000-8000-000000000001", "6f0c8d1e-0000-4000-8000-000000000002"
    easel.generations.create("a", model="tiny")
    easel.generations.get(job)
    easel.generations.list().first()
    easel.generations.cancel(job)
    easel.templates.list().first()
    easel.templates.get("listing", version=2)
    easel.templates.create("listing", "a {name}")
    easel.templates.update("listing", text="a {name} on white")
    easel.templates.versions("listing").first()
    easel.templates.render("listing", {"name": "pear"})
    easel.categories.list()
    easel.categories.get("mugs")
    easel.categories.create("mugs", "Mugs", base_model="tiny")
    easel.categories.promote("mugs", 3)
    easel.categories.rollback("mugs")
    easel.categories.alias_history("mugs").first()
    easel.model_versions.list(category="mugs").first()
    easel.model_versions.get(3)
    easel.trainings.create(
        category="mugs", rare_token="sks", class_prompt="a mug", photos=[("a.png", b"x")] * 3
    )
    easel.trainings.get(job)
    easel.trainings.list().first()
    easel.trainings.cancel(job)
    easel.catalogs.create("spring")
    easel.catalogs.get("spring")
    easel.catalogs.list().first()
    easel.catalogs.upload("spring", io.BytesIO(b"sku,name\n"), file_name="p.csv")
    easel.catalogs.products("spring", published="true").first()
    easel.catalog_runs.create("spring", "missing")
    easel.catalog_runs.get(run)
    easel.catalog_runs.list().first()
    easel.catalog_runs.items(run).first()
    easel.catalog_runs.pause(run)
    easel.catalog_runs.resume(run)
    easel.catalog_runs.cancel(run)
    easel.catalog_runs.export(run)
    easel.catalog_runs.rebuild_export(run)
    easel.usage()


def test_every_request_the_client_sends_is_a_documented_route(schema):
    routes = [
        (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), set(methods))
        for path, methods in schema["paths"].items()
    ]
    easel, sent = _recording_client()
    _call_every_method(easel)
    assert len(sent) >= 35
    undocumented = [
        (method, path)
        for method, path in sent
        if not any(pattern.match(path) and method.lower() in ms for pattern, ms in routes)
    ]
    assert undocumented == []
