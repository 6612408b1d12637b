"""The unified parameter protocol: every bound is an error naming its field; precedence
request > template > style > model defaults; seeds are chosen and recorded; aspect ratios map to
the family's native area."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError

from generation.protocol import (
    ASPECT_RATIOS,
    FAMILY_LIMITS,
    SCHEDULERS,
    SEED_MAX,
    GenerationParams,
    GenerationRequestSerializer,
    resolve_params,
    scheduler_class_name,
)
from generation.template_services import prompt_template_create


def _model(family: str = "tiny", **defaults: object) -> SimpleNamespace:
    base = SimpleNamespace(name=f"{family}-base", family=family, default_params=defaults)
    return SimpleNamespace(base=base, version=None, category=None)


def _errors(body: dict) -> dict:
    s = GenerationRequestSerializer(data=body)
    assert not s.is_valid()
    return s.errors


def _valid(body: dict) -> dict:
    s = GenerationRequestSerializer(data=body)
    assert s.is_valid(), s.errors
    return s.validated_data


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cfg_scale", -0.1),
        ("cfg_scale", 20.5),
        ("cfg_scale", "NaN"),
        ("cfg_scale", True),
        ("steps", 0),
        ("steps", 101),
        ("steps", 1.5),
        ("seed", -1),
        ("seed", SEED_MAX + 1),
        ("num_images", 0),
        ("num_images", 9),
        ("num_images", True),
        ("scheduler", "karras"),
        ("aspect_ratio", "5:4"),
        ("style", "vaporwave"),
        ("prompt", "x" * 2001),
        ("prompt", "   "),
        ("negative_prompt", "x" * 1001),
        ("model", "m" * 121),
        ("category", "not a slug"),
        ("template_version", 0),
    ],
)
def test_each_bound_is_an_error_naming_its_field(field, value):
    body = {"prompt": "a red apple", field: value}
    if field in ("template_version",):
        body = {"template": "hero", field: value}
    assert set(_errors(body)) == {field}


@pytest.mark.parametrize(
    ("field", "value"),
    [("width", 31), ("width", 1544), ("width", 100), ("height", 0), ("height", 2048)],
)
def test_size_bounds_and_multiples_of_8_name_the_side(field, value):
    other = "height" if field == "width" else "width"
    errors = _errors({"prompt": "p", field: value, other: 64})
    assert set(errors) == {field}


def test_a_size_that_is_not_a_multiple_of_8_suggests_neighbours():
    errors = _errors({"prompt": "p", "width": 100, "height": 64})
    assert "96" in str(errors["width"]) and "104" in str(errors["width"])


def test_extreme_values_at_the_bounds_are_accepted():
    data = _valid(
        {
            "prompt": "p" * 2000,
            "cfg_scale": 0,
            "steps": 100,
            "seed": SEED_MAX,
            "num_images": 8,
            "width": 32,
            "height": 1536,
        }
    )
    assert data["seed"] == SEED_MAX and data["num_images"] == 8


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"prompt": "p", "model": "tiny", "category": "produce"}, {"category"}),
        ({"prompt": "p", "template": "hero"}, {"template"}),
        ({}, {"prompt"}),
        ({"prompt": "p", "variables": {"a": "b"}}, {"variables"}),
        ({"prompt": "p", "template_version": 2}, {"template_version"}),
        ({"prompt": "p", "width": 64}, {"height"}),
        ({"prompt": "p", "height": 64}, {"width"}),
        ({"prompt": "p", "width": 64, "height": 64, "aspect_ratio": "1:1"}, {"aspect_ratio"}),
        ({"prompt": "p", "organization": 3}, {"organization"}),
        ({"template": "hero", "variables": {"not valid": "x"}}, {"variables"}),
    ],
)
def test_exclusive_and_paired_fields_name_the_offender(body, fields):
    assert set(_errors(body)) == fields


def test_scheduler_names_map_to_diffusers_classes():
    import diffusers

    for name in SCHEDULERS:
        assert hasattr(diffusers, scheduler_class_name(name)), name
    assert scheduler_class_name("euler_a") == "EulerAncestralDiscreteScheduler"
    with pytest.raises(ValueError, match="karras"):
        scheduler_class_name("karras")


def test_absent_seed_is_chosen_and_recorded():
    data = _valid({"prompt": "p"})
    seeds = {resolve_params(org=None, data=data, resolved_model=_model()).seed for _ in range(8)}
    params = resolve_params(org=None, data=data, resolved_model=_model())
    assert params.seed_chosen is True
    assert all(0 <= s <= SEED_MAX for s in seeds)
    assert len(seeds) > 1  # drawn, not a constant
    given = resolve_params(
        org=None, data=_valid({"prompt": "p", "seed": 7}), resolved_model=_model()
    )
    assert (given.seed, given.seed_chosen) == (7, False)


def test_image_seeds_are_consecutive_and_wrap():
    params = resolve_params(
        org=None,
        data=_valid({"prompt": "p", "seed": SEED_MAX, "num_images": 3}),
        resolved_model=_model(),
    )
    assert params.image_seeds() == [SEED_MAX, 0, 1]


def test_model_defaults_apply_when_the_request_is_silent():
    model = _model("tiny", native_size=32, steps=4, cfg=5.0, scheduler="euler")
    params = resolve_params(org=None, data=_valid({"prompt": "p"}), resolved_model=model)
    assert (params.width, params.height, params.steps, params.cfg_scale, params.scheduler) == (
        32,
        32,
        4,
        5.0,
        "euler",
    )
    assert params.num_images == 1 and params.family == "tiny" and params.base_model == "tiny-base"


def test_family_native_size_when_the_model_has_no_defaults():
    for family, limits in FAMILY_LIMITS.items():
        params = resolve_params(
            org=None, data=_valid({"prompt": "p"}), resolved_model=_model(family)
        )
        assert (params.width, params.height) == (limits.native_side, limits.native_side)


@pytest.mark.parametrize("family", ["tiny", "sd15", "sdxl"])
@pytest.mark.parametrize("ratio", ASPECT_RATIOS)
def test_aspect_ratio_maps_to_native_area_in_multiples_of_8(family, ratio):
    params = resolve_params(
        org=None, data=_valid({"prompt": "p", "aspect_ratio": ratio}), resolved_model=_model(family)
    )
    limits = FAMILY_LIMITS[family]
    w, h = (int(x) for x in ratio.split(":"))
    assert params.width % 8 == 0 and params.height % 8 == 0
    assert limits.min_side <= min(params.width, params.height)
    assert max(params.width, params.height) <= limits.max_side
    assert abs(params.width / params.height - w / h) < 0.15
    area = params.width * params.height
    assert 0.8 < area / limits.native_side**2 < 1.2


def test_sdxl_16_9_is_about_one_megapixel():
    params = resolve_params(
        org=None,
        data=_valid({"prompt": "p", "aspect_ratio": "16:9"}),
        resolved_model=_model("sdxl"),
    )
    assert (params.width, params.height) == (1368, 768)


@pytest.mark.parametrize(
    ("family", "width", "height", "bad"),
    [
        ("tiny", 512, 64, "width"),
        ("sd15", 512, 128, "height"),
        ("sdxl", 256, 256, "width"),
        ("sd15", 1536, 512, "width"),
    ],
)
def test_family_bounds_name_the_side(family, width, height, bad):
    data = _valid({"prompt": "p", "width": width, "height": height})
    with pytest.raises(ValidationError) as info:
        resolve_params(org=None, data=data, resolved_model=_model(family))
    assert bad in info.value.message_dict
    assert family in info.value.message_dict[bad][0]


def test_style_is_applied_to_a_raw_prompt_with_its_negatives():
    params = resolve_params(
        org=None,
        data=_valid({"prompt": "a red apple", "style": "studio", "negative_prompt": "blurry"}),
        resolved_model=_model(),
    )
    assert params.prompt == (
        "a red apple, soft studio lighting, seamless light grey backdrop, centered product shot"
    )
    assert params.negative_prompt == "blurry, clutter, harsh shadows"


def test_style_phrases_already_in_the_prompt_are_not_repeated():
    params = resolve_params(
        org=None,
        data=_valid({"prompt": "apple, Soft  studio lighting", "style": "studio"}),
        resolved_model=_model(),
    )
    assert params.prompt.lower().count("soft studio lighting") == 1


def test_style_params_are_below_the_request():
    by_style = resolve_params(
        org=None, data=_valid({"prompt": "p", "style": "seasonal"}), resolved_model=_model("sdxl")
    )
    assert by_style.width > by_style.height  # seasonal suggests 16:9
    by_request = resolve_params(
        org=None,
        data=_valid({"prompt": "p", "style": "seasonal", "aspect_ratio": "9:16"}),
        resolved_model=_model("sdxl"),
    )
    assert by_request.width < by_request.height


@pytest.mark.django_db
def test_precedence_request_over_template_over_style_over_model(owner):
    prompt_template_create(
        actor=owner.principal,
        application="hero",
        text="a photo of {product}",
        style="white-background",  # suggests 1:1
        default_params={"steps": 12, "cfg_scale": 6.5, "width": 128, "height": 64},
    )
    model = _model("tiny", native_size=64, steps=4, cfg=5.0, scheduler="pndm")
    data = _valid({"template": "hero", "variables": {"product": "kiwi"}, "steps": 20})
    params = resolve_params(org=owner.org, data=data, resolved_model=model)
    assert params.steps == 20  # request
    assert params.cfg_scale == 6.5  # template
    assert (params.width, params.height) == (128, 64)  # template beats the style's 1:1
    assert params.scheduler == "pndm"  # model
    assert params.template_application == "hero" and params.template_version == 1
    assert params.prompt.startswith("a photo of kiwi, even diffuse lighting, pure white background")


@pytest.mark.django_db
def test_template_defaults_outside_the_family_bounds_name_field_and_template(owner):
    prompt_template_create(
        actor=owner.principal,
        application="big",
        text="a {thing}",
        default_params={"width": 1024, "height": 1024},
    )
    data = _valid({"template": "big", "variables": {"thing": "cup"}})
    with pytest.raises(ValidationError) as info:
        resolve_params(org=owner.org, data=data, resolved_model=_model("tiny"))
    assert "template 'big' v1" in info.value.message_dict["width"][0]


@pytest.mark.django_db
def test_unknown_template_is_a_field_error(owner, outsider):
    prompt_template_create(actor=outsider.principal, application="theirs", text="a {x}")
    data = _valid({"template": "theirs", "variables": {"x": "y"}})
    with pytest.raises(ValidationError) as info:
        resolve_params(org=owner.org, data=data, resolved_model=_model())
    assert "template" in info.value.message_dict


@pytest.mark.django_db
def test_template_variable_errors_name_missing_and_unknown(owner):
    prompt_template_create(actor=owner.principal, application="hero", text="{product} in {color}")
    data = _valid({"template": "hero", "variables": {"product": "kiwi", "colour": "green"}})
    with pytest.raises(ValidationError) as info:
        resolve_params(org=owner.org, data=data, resolved_model=_model())
    message = info.value.message_dict["variables"][0]
    assert "missing variables: color" in message.lower()
    assert "unknown variables: colour" in message.lower()


def test_params_round_trip_through_a_dict():
    params = resolve_params(
        org=None, data=_valid({"prompt": "p", "seed": 3}), resolved_model=_model()
    )
    assert GenerationParams.from_dict(params.to_dict() | {"later_field": 1}) == params
    assert params.scheduler_class == "DDIMScheduler"


def test_request_schema_documents_every_field():
    for name, field in GenerationRequestSerializer().fields.items():
        assert field.help_text, f"{name} has no help_text"
