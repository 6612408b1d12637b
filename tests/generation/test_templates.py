"""Prompt templates: strict rendering, few-shot shaping, versioning, and the API (roles,
outsider 404s, errors naming variables)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError

from generation.models import PromptTemplate
from generation.template_selectors import (
    get_prompt_template_by_id_for_org,
    get_prompt_template_for_org,
)
from generation.template_services import prompt_template_create, prompt_template_update
from generation.templates import (
    TemplateSyntaxError,
    TemplateVariablesError,
    render_template,
    shared_example_phrases,
    template_variables,
)
from tenants.models import AuditEvent
from tenants.roles import Role


def _template(text: str, **kw: object) -> SimpleNamespace:
    defaults = {"pk": 1, "version": 1, "few_shot_examples": [], "style": "", "negative_prompt": ""}
    return SimpleNamespace(text=text, **(defaults | kw))


# --- Rendering ----------------------------------------------------------------------------------


def test_variables_are_substituted_and_whitespace_collapsed():
    rendered = render_template(
        _template("a photo of {product} on {surface}, {product} label visible"),
        {"product": "  oat   milk ", "surface": "marble"},
    )
    assert rendered.prompt == "a photo of oat milk on marble, oat milk label visible"
    assert (rendered.template_id, rendered.template_version) == (1, 1)


def test_literal_braces_stay():
    assert render_template(_template("{{logo}} {x}"), {"x": "y"}).prompt == "{logo} y"


def test_missing_and_unknown_variables_are_named_together():
    with pytest.raises(TemplateVariablesError) as info:
        render_template(_template("{product} in {color} on {surface}"), {"product": "a", "hue": 1})
    assert info.value.missing == ["color", "surface"]
    assert info.value.unknown == ["hue"]
    assert "color, surface" in str(info.value) and "hue" in str(info.value)


@pytest.mark.parametrize(
    "text",
    ["{x.__class__}", "{x[0]}", "{0}", "{}", "{x!r}", "{x:>10}", "{x", "x}", "{a b}"],
)
def test_only_plain_placeholders_are_allowed(text):
    with pytest.raises(TemplateSyntaxError):
        template_variables(text)


def test_attribute_access_cannot_reach_python_objects_even_when_rendering():
    with pytest.raises(TemplateSyntaxError):
        render_template(_template("{product.__class__.__mro__}"), {"product": "x"})


def test_few_shot_examples_add_their_shared_phrases_not_their_subjects():
    examples = [
        "a jar of honey, soft window light, white marble counter, centered",
        "a bag of rice, Soft window light, white marble counter",
        "a bottle of olive oil, soft window light, wooden table",
    ]
    assert shared_example_phrases(examples) == ["soft window light", "white marble counter"]
    rendered = render_template(
        _template("a photo of {p}", few_shot_examples=examples), {"p": "kiwi"}
    )
    assert rendered.prompt == "a photo of kiwi, soft window light, white marble counter"
    assert "honey" not in rendered.prompt and "wooden" not in rendered.prompt


def test_few_shot_phrases_the_text_already_has_are_not_repeated():
    examples = ["a cup, soft window light, linen", "a mug, soft window light, linen"]
    rendered = render_template(
        _template("{p} in Soft Window Light", few_shot_examples=examples), {"p": "teapot"}
    )
    assert rendered.prompt == "teapot in Soft Window Light, linen"


def test_a_single_example_contributes_everything_but_its_subject():
    rendered = render_template(
        _template("{p}", few_shot_examples=["a lemon, top-down view, pastel backdrop"]),
        {"p": "lime"},
    )
    assert rendered.prompt == "lime, top-down view, pastel backdrop"


def test_rendering_is_deterministic_and_orders_few_shot_before_style():
    t = _template(
        "{p}",
        few_shot_examples=["x, rim light", "y, rim light"],
        style="studio",
        negative_prompt="n",
    )
    first = render_template(t, {"p": "pear"})
    assert first == render_template(t, {"p": "pear"})
    assert first.prompt.startswith("pear, rim light, soft studio lighting")
    assert first.negative_prompt == "n, clutter, harsh shadows"


def test_request_style_and_negative_replace_the_templates():
    t = _template("{p}", style="studio", negative_prompt="blurry")
    rendered = render_template(t, {"p": "fig"}, style="dark-moody", negative_prompt="")
    assert "dark slate background" in rendered.prompt and "studio" not in rendered.prompt
    assert rendered.negative_prompt == "overexposed, flat lighting"
    assert render_template(t, {"p": "fig"}, style="").prompt == "fig"


# --- Services: versions -------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_edit_makes_a_new_version_and_old_jobs_keep_theirs(owner):
    v1 = prompt_template_create(actor=owner.principal, application="hero", text="a {p}")
    recorded_by_old_job = v1.pk
    v2, created = prompt_template_update(
        actor=owner.principal, application="hero", changes={"text": "a shiny {p}"}
    )
    assert created and v2.version == 2 and v2.pk != v1.pk
    assert get_prompt_template_for_org(org=owner.org, application="hero").version == 2
    old = get_prompt_template_by_id_for_org(org=owner.org, template_id=recorded_by_old_job)
    assert (old.version, old.text) == (1, "a {p}")
    assert render_template(old, {"p": "plum"}).prompt == "a plum"
    assert AuditEvent.objects.filter(verb="prompt_template.edited", object_id=str(v2.pk)).exists()


@pytest.mark.django_db
def test_an_edit_that_changes_nothing_writes_no_version(owner):
    prompt_template_create(actor=owner.principal, application="hero", text="a {p}", style="studio")
    same, created = prompt_template_update(
        actor=owner.principal, application="hero", changes={"style": "studio"}
    )
    assert not created and same.version == 1
    assert PromptTemplate.objects.filter(application="hero").count() == 1


@pytest.mark.django_db
def test_an_edit_from_a_stale_version_is_refused(owner):
    prompt_template_create(actor=owner.principal, application="hero", text="a {p}")
    prompt_template_update(actor=owner.principal, application="hero", changes={"text": "b {p}"})
    with pytest.raises(ValidationError) as info:
        prompt_template_update(
            actor=owner.principal, application="hero", changes={"text": "c {p}"}, base_version=1
        )
    assert "base_version" in info.value.message_dict


@pytest.mark.django_db
def test_creating_an_existing_application_is_refused(owner):
    prompt_template_create(actor=owner.principal, application="hero", text="a {p}")
    with pytest.raises(ValidationError) as info:
        prompt_template_create(actor=owner.principal, application="hero", text="b {p}")
    assert "application" in info.value.message_dict


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"text": "a {x.__class__}"}, "text"),
        ({"text": "   "}, "text"),
        ({"style": "vaporwave"}, "style"),
        ({"default_params": {"steps": 500}}, "default_params"),
        ({"default_params": {"colour": "red"}}, "default_params"),
        ({"few_shot_examples": ["ok", ""]}, "few_shot_examples"),
        ({"rubric": "is it sharp?"}, "rubric"),
    ],
)
def test_invalid_template_fields_are_named(owner, fields, bad):
    with pytest.raises(ValidationError) as info:
        prompt_template_create(
            actor=owner.principal, application="hero", **({"text": "a {p}"} | fields)
        )
    assert set(info.value.message_dict) == {bad}


# --- API ----------------------------------------------------------------------------------------

BODY = {
    "application": "product-hero",
    "text": "a photo of {product} in {color}",
    "few_shot_examples": ["a jar of jam, soft light, linen", "a loaf, soft light, linen, rustic"],
    "style": "studio",
    "negative_prompt": "blurry",
    "default_params": {"steps": 12, "aspect_ratio": "4:3"},
    "rubric": ["Is the product centered?"],
}


@pytest.fixture
def hero(owner, client_for):  # type: ignore[no-untyped-def]
    response = client_for(owner).post("/api/v1/templates", BODY, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.mark.django_db
def test_create_returns_version_1_with_its_variables(hero):
    assert hero["version"] == 1
    assert hero["variables"] == ["product", "color"]
    assert hero["default_params"] == {"steps": 12, "aspect_ratio": "4:3"}


@pytest.mark.django_db
def test_edit_via_put_and_patch_makes_versions_and_history_lists_them(owner, client_for, hero):
    client = client_for(owner)
    patched = client.patch(
        "/api/v1/templates/product-hero", {"style": "dark-moody"}, format="json"
    ).json()
    assert (patched["version"], patched["style"], patched["text"]) == (
        2,
        "dark-moody",
        BODY["text"],
    )
    put = client.put("/api/v1/templates/product-hero", {"text": "{product}"}, format="json").json()
    assert (put["version"], put["style"], put["rubric"]) == (3, "", [])
    assert client.get("/api/v1/templates/product-hero").json()["version"] == 3
    assert client.get("/api/v1/templates/product-hero?version=1").json()["style"] == "studio"
    versions = client.get("/api/v1/templates/product-hero/versions").json()["results"]
    assert [v["version"] for v in versions] == [3, 2, 1]
    latest = client.get("/api/v1/templates").json()["results"]
    assert [(t["application"], t["version"]) for t in latest] == [("product-hero", 3)]


@pytest.mark.django_db
def test_render_preview_shapes_the_prompt(owner, client_for, hero):
    response = client_for(owner).post(
        "/api/v1/templates/product-hero/render",
        {"variables": {"product": "honey", "color": "gold"}},
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["prompt"] == (
        "a photo of honey in gold, soft light, linen, soft studio lighting, "
        "seamless light grey backdrop, centered product shot"
    )
    assert body["negative_prompt"] == "blurry, clutter, harsh shadows"
    assert body["template_version"] == 1


@pytest.mark.django_db
def test_render_with_wrong_variables_is_a_400_naming_them(owner, client_for, hero):
    response = client_for(owner).post(
        "/api/v1/templates/product-hero/render",
        {"variables": {"product": "honey", "colour": "gold"}},
        format="json",
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error["fields"]) == {"variables"}
    assert "color" in error["message"] and "colour" in error["message"]


@pytest.mark.django_db
def test_invalid_default_params_name_the_parameter(owner, client_for):
    response = client_for(owner).post(
        "/api/v1/templates",
        BODY | {"default_params": {"steps": 0, "width": 64}},
        format="json",
    )
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]["default_params"]) == {"steps"}


@pytest.mark.django_db
def test_bad_version_query_is_a_400(owner, client_for, hero):
    response = client_for(owner).get("/api/v1/templates/product-hero?version=abc")
    assert response.status_code == 400
    assert "version" in response.json()["error"]["fields"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/api/v1/templates/product-hero", None),
        ("get", "/api/v1/templates/product-hero?version=1", None),
        ("get", "/api/v1/templates/product-hero/versions", None),
        ("post", "/api/v1/templates/product-hero/render", {"variables": {}}),
        ("patch", "/api/v1/templates/product-hero", {"style": ""}),
        ("put", "/api/v1/templates/product-hero", {"text": "mine now"}),
    ],
)
def test_outsider_gets_404_for_another_orgs_template(
    outsider, client_for, hero, method, path, body
):
    client = client_for(outsider)
    response = getattr(client, method)(path, body, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert PromptTemplate.objects.filter(application="product-hero").count() == 1


@pytest.mark.django_db
def test_outsider_does_not_see_another_orgs_templates_in_lists(outsider, client_for, hero):
    assert client_for(outsider).get("/api/v1/templates").json()["results"] == []


@pytest.mark.django_db
def test_outsider_may_reuse_an_application_name(outsider, client_for, hero):
    response = client_for(outsider).post("/api/v1/templates", BODY, format="json")
    assert response.status_code == 201 and response.json()["version"] == 1


@pytest.mark.django_db
def test_viewer_reads_and_previews_but_cannot_create_or_edit(persona, client_for, hero):
    viewer = client_for(persona(Role.VIEWER))
    assert viewer.get("/api/v1/templates/product-hero").status_code == 200
    render = viewer.post(
        "/api/v1/templates/product-hero/render",
        {"variables": {"product": "a", "color": "b"}},
        format="json",
    )
    assert render.status_code == 200
    assert (
        viewer.post("/api/v1/templates", BODY | {"application": "x"}, format="json").status_code
        == 403
    )
    assert (
        viewer.patch("/api/v1/templates/product-hero", {"style": ""}, format="json").status_code
        == 403
    )
    assert PromptTemplate.objects.count() == 1


@pytest.mark.django_db
def test_editor_may_edit(persona, client_for, hero):
    editor = client_for(persona(Role.EDITOR), session=True)
    response = editor.patch("/api/v1/templates/product-hero", {"style": ""}, format="json")
    assert response.status_code == 200 and response.json()["version"] == 2


@pytest.mark.django_db
def test_styles_are_listed(owner, client_for):
    names = [s["name"] for s in client_for(owner).get("/api/v1/styles").json()]
    assert {"studio", "white-background", "lifestyle", "flat-lay", "seasonal", "dark-moody"} <= set(
        names
    )


@pytest.mark.django_db
def test_openapi_documents_the_template_endpoints(client):
    schema = client.get("/api/schema/?format=json").json()
    assert "/api/v1/templates/{application}/render" in schema["paths"]
    params = schema["components"]["schemas"]["ProtocolParamsRequest"]["properties"]
    assert "multiple of 8" in params["width"]["description"]
