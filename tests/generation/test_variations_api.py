"""Uploads, layouts and variations through the API and the worker: every bad field is a 400 that
names it, a refused upload stores nothing, another organization's upload or image is "no such"
(404 on its own endpoint), an inpainted job keeps its source outside the mask, and a variation's
lineage points at its source."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from generation import storage, worker
from generation.models import GenerationJob, JobStatus, Upload
from models_registry.engine.shapes_data import render_shots

BODY = {"prompt": "a red apple on a white background", "model": "tiny", "seed": 7, "steps": 2}
LAYOUT = [{"phrase": "red apple", "box": [0.1, 0.4, 0.5, 0.95]}]


def _png(image: Image.Image, fmt: str = "PNG") -> io.BytesIO:
    out = io.BytesIO()
    image.save(out, format=fmt)
    out.seek(0)
    return out


def _noise(side: int = 64) -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8))


def _shot(side: int = 64) -> Image.Image:
    """A product shot: a source the quality gate's defect checks pass."""
    return Image.fromarray(render_shots(["red"], ["apple"], ["white"], seed=2, size=side)[0])


def _mask(box: tuple[int, int, int, int] = (16, 16, 48, 48), side: int = 64) -> Image.Image:
    mask = Image.new("L", (side, side), 0)
    mask.paste(255, box)
    return mask


def _errors(response) -> dict:  # type: ignore[no-untyped-def]
    fields = response.json()["error"]["fields"]
    return {k: " ".join(v) if isinstance(v, list) else str(v) for k, v in fields.items()}


@pytest.fixture
def api(client_for, owner, tiny_base_model, enqueued):  # type: ignore[no-untyped-def]
    return client_for(owner)


def _upload(client, image: Image.Image, *, kind: str = "image", name: str = "photo.png"):  # type: ignore[no-untyped-def]
    data = _png(image)
    data.name = name
    return client.post("/api/v1/uploads", {"file": data, "kind": kind}, format="multipart")


def test_an_upload_is_validated_normalized_and_stored_with_its_hash(api):
    sent = _png(_noise())
    raw = sent.getvalue()
    response = _upload(api, _noise())
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["kind"], body["width"], body["height"]) == ("image", 64, 64)
    upload = Upload.objects.get(pk=body["id"])
    assert upload.sha256 == storage.sha256_hex(raw)
    stored = Image.open(io.BytesIO(storage.read_object(upload.storage_key)))
    assert stored.format == "PNG" and stored.mode == "RGB"
    assert api.get(f"/api/v1/uploads/{body['id']}").json()["sha256"] == upload.sha256


def test_a_refused_upload_names_the_file_and_why_and_stores_nothing(api):
    fake = io.BytesIO(b"<html>not an image</html>")
    fake.name = "shot.png"
    response = api.post("/api/v1/uploads", {"file": fake}, format="multipart")
    assert response.status_code == 400
    assert "shot.png" in _errors(response)["file"] and "not a PNG" in _errors(response)["file"]
    black = _upload(api, Image.new("L", (64, 64), 0), kind="mask", name="mask.png")
    assert black.status_code == 400 and "no white" in _errors(black)["file"]
    tiny = _upload(api, _noise(16), name="thumb.png")
    assert tiny.status_code == 400 and "smaller than 32" in _errors(tiny)["file"]
    assert not Upload.objects.exists()


def test_another_organizations_upload_and_image_are_no_such_thing(
    api, client_for, outsider, tiny_base_model
):
    mine = _upload(api, _noise()).json()["id"]
    theirs = client_for(outsider)
    assert theirs.get(f"/api/v1/uploads/{mine}").status_code == 404
    assert theirs.get("/api/v1/uploads").json()["results"] == []
    body = BODY | {"mode": "img2img", "source_upload": mine}
    response = theirs.post("/api/v1/generations", body, format="json")
    assert (
        response.status_code == 400
        and f"No upload {mine} here" in _errors(response)["source_upload"]
    )


def test_a_layout_on_a_model_that_cannot_follow_one_is_a_400_naming_those_that_can(
    api, tiny_gligen_base_model
):
    response = api.post("/api/v1/generations", BODY | {"layout": LAYOUT}, format="json")
    assert response.status_code == 400
    message = _errors(response)["layout"]
    assert "'tiny' cannot follow a layout" in message and "tiny-gligen" in message


def test_a_templates_default_layout_applies_and_is_named_when_the_model_cannot_follow_it(
    api, owner, tiny_gligen_base_model
):
    from generation.template_services import prompt_template_create

    prompt_template_create(
        actor=owner.principal,
        application="hero-left",
        text="a {item} on a white background",
        default_params={"layout": LAYOUT},
    )
    body = {"template": "hero-left", "variables": {"item": "red apple"}, "steps": 2}
    grounded = api.post("/api/v1/generations", body | {"model": "tiny-gligen"}, format="json")
    assert grounded.status_code == 202 and grounded.json()["params"]["layout"] == LAYOUT
    plain = api.post("/api/v1/generations", body | {"model": "tiny"}, format="json")
    assert "(from the template 'hero-left' v1)" in _errors(plain)["layout"]
    cleared = api.post("/api/v1/generations", body | {"model": "tiny", "layout": []}, format="json")
    assert cleared.status_code == 202 and cleared.json()["params"]["layout"] == []


@pytest.mark.parametrize(
    ("layout", "says"),
    [
        ([{"phrase": "apple", "box": [0.6, 0.1, 0.2, 0.9]}], "x0 < x1"),
        ([{"phrase": "apple", "box": [0.1, 0.1, 1.2, 0.9]}], "leaves the frame"),
        ([{"phrase": "apple", "box": [0.1, 0.1, 0.9]}], "four numbers"),
        ([{"phrase": " ", "box": [0.1, 0.1, 0.9, 0.9]}], "blank"),
        ([{"phrase": "a" * 81, "box": [0.1, 0.1, 0.9, 0.9]}], "longer than 80"),
        ([{"phrase": "apple", "box": [0.1, 0.1, 0.9, 0.9], "z": 1}], "unknown field"),
        ([{"phrase": "apple", "box": [0, 0, 1, 1]}] * 9, "At most 8 boxes"),
        ([{"phrase": "apple", "box": [0, 0, 10**400, 1]}], "four numbers"),
        ("left half", "list of"),
    ],
)
def test_an_invalid_layout_is_a_400_naming_the_box_and_the_problem(
    api, tiny_gligen_base_model, layout, says
):
    body = BODY | {"model": "tiny-gligen", "layout": layout}
    response = api.post("/api/v1/generations", body, format="json")
    assert response.status_code == 400 and says in _errors(response)["layout"]


@pytest.mark.parametrize(
    ("extra", "field", "says"),
    [
        ({"mode": "img2img"}, "source_image", "needs a source"),
        ({"strength": 0.5}, "strength", "txt2img"),
        ({"mode": "inpaint", "source_image": "0" * 32}, "mask_upload", "needs a mask"),
        ({"mode": "img2img", "source_image": "0" * 32, "feather": 3}, "feather", "inpaint"),
        ({"mode": "img2img", "source_image": "0" * 32}, "source_image", "No generated image"),
        ({"mode": "sketch"}, "mode", ""),
    ],
)
def test_variation_fields_that_do_not_fit_together_are_400_naming_the_field(
    api, extra, field, says
):
    response = api.post("/api/v1/generations", BODY | extra, format="json")
    assert response.status_code == 400 and says in _errors(response)[field]


def test_a_variation_is_drawn_at_its_sources_proportions_and_its_mask_must_match_them(api):
    wide = _upload(api, _shot(64).resize((96, 64))).json()["id"]
    body = BODY | {"mode": "img2img", "source_upload": wide}
    job = api.post("/api/v1/generations", body, format="json").json()
    assert (job["params"]["width"], job["params"]["height"]) == (96, 64)
    square = _upload(api, _mask(), kind="mask").json()["id"]
    body = BODY | {"mode": "inpaint", "source_upload": wide, "mask_upload": square}
    errors = _errors(api.post("/api/v1/generations", body, format="json"))
    assert "the source is 96×64" in errors["mask_upload"]
    few = BODY | {"mode": "img2img", "source_upload": wide, "strength": 0.2, "steps": 4}
    errors = _errors(api.post("/api/v1/generations", few, format="json"))
    assert "runs no denoising step; use at least 0.25" in errors["strength"]


def test_the_transparent_part_of_a_mask_is_kept(api):
    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    mask.paste((255, 255, 255, 255), (16, 16, 48, 48))
    made = Upload.objects.get(pk=_upload(api, mask, kind="mask").json()["id"])
    stored = np.asarray(Image.open(io.BytesIO(storage.read_object(made.storage_key))))
    assert stored[4, 4] == 0 and stored[32, 32] == 255


def test_a_mask_is_not_a_source_and_an_image_is_not_a_mask(api):
    image = _upload(api, _noise()).json()["id"]
    mask = _upload(api, _mask(), kind="mask").json()["id"]
    body = BODY | {"mode": "inpaint", "source_upload": mask, "mask_upload": image}
    errors = _errors(api.post("/api/v1/generations", body, format="json"))
    assert "is a mask" in errors["source_upload"]


def test_a_grounded_job_records_its_layout_and_never_shares_a_call_with_a_plain_one(
    api, tiny_gligen_base_model
):
    body = BODY | {"model": "tiny-gligen"}
    grounded = api.post("/api/v1/generations", body | {"layout": LAYOUT}, format="json").json()
    plain = api.post("/api/v1/generations", body, format="json").json()
    assert grounded["params"]["layout"] == LAYOUT and plain["params"]["layout"] == []
    keys = [GenerationJob.objects.get(pk=job["id"]).batch_key for job in (grounded, plain)]
    assert keys[0] != keys[1]
    worker.generation_run(job_id=grounded["id"])  # the real pipeline cache and GLIGEN layers
    job = GenerationJob.objects.get(pk=grounded["id"])
    assert job.status == JobStatus.SUCCEEDED and job.images.count() == 1


@pytest.mark.usefixtures("local_pipeline")
def test_an_inpainted_job_keeps_its_source_outside_the_mask_and_records_its_lineage(api):
    source = _shot()
    image = _upload(api, source).json()["id"]
    mask = _upload(api, _mask(), kind="mask").json()["id"]
    body = BODY | {"mode": "inpaint", "source_upload": image, "mask_upload": mask, "steps": 4}
    created = api.post("/api/v1/generations", body, format="json")
    assert created.status_code == 202, created.content
    worker.generation_run(job_id=created.json()["id"])
    job = api.get(f"/api/v1/generations/{created.json()['id']}").json()
    assert job["status"] == "succeeded" and job["source_upload"] == image, job["error"]
    made = GenerationJob.objects.get(pk=job["id"]).images.get()
    pixels = np.asarray(
        Image.open(io.BytesIO(storage.read_object(made.storage_key))).convert("RGB")
    )
    outside = np.asarray(_mask()) == 0
    assert np.array_equal(pixels[outside], np.asarray(source)[outside])
    assert np.abs(pixels.astype(int) - np.asarray(source))[~outside].mean() > 20

    # A variation of that result: its lineage is the generated image, and the API says so.
    again = BODY | {"mode": "img2img", "source_image": str(made.pk), "strength": 0.5}
    varied = api.post("/api/v1/generations", again, format="json").json()
    assert varied["source_image"] == str(made.pk) and varied["params"]["strength"] == 0.5
    worker.generation_run(job_id=varied["id"])
    assert GenerationJob.objects.get(pk=varied["id"]).status == JobStatus.SUCCEEDED
    assert list(made.variations.values_list("id", flat=True)) == [
        GenerationJob.objects.get(pk=varied["id"]).pk
    ]
