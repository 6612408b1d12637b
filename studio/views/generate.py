"""Generate: pick a model or category and a template, fill its variables, set the unified
parameters, submit. The request goes through the same protocol serializer and the same
``generation_job_create`` service as ``POST /api/v1/generations``."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect

from generation.protocol import GenerationRequestSerializer
from generation.selectors import get_generated_image_for_org, get_generation_job_for_org
from generation.services import generation_job_create
from generation.uploads import upload_create
from tenants.quotas import QuotaExceeded
from tenants.roles import Action

from ..access import render_page, studio_view
from ..errors import field_messages, serializer_messages
from ..forms import GenerateForm, initial_from_job

# Protocol field → the form field that shows its error.
FIELD_FOR = {
    "model": "target",
    "category": "target",
    "template_version": "template",
    "source_image": "source_file",
    "source_upload": "source_file",
    "mask_upload": "mask_file",
}
DRAWN_MASK_PREFIX = "data:image/png;base64,"


def _attach_errors(form: GenerateForm, errors: dict[str, str]) -> None:
    for name, text in errors.items():
        field = FIELD_FOR.get(name, name)
        form.add_error(field if field in form.fields else None, text)


def _drawn_mask(data_url: str) -> bytes | None:
    """The PNG the mask editor drew (a ``data:`` URL), or None when nothing was drawn."""
    if not data_url.startswith(DRAWN_MASK_PREFIX):
        return None
    try:
        return base64.b64decode(data_url.removeprefix(DRAWN_MASK_PREFIX), validate=True)
    except binascii.Error:
        raise ValidationError({"mask_file": "The drawn mask could not be read."}) from None


def _uploads(request: HttpRequest, form: GenerateForm) -> dict[str, str]:
    """Store the form's source and mask files (a chosen mask file, else the mask drawn over the
    source) as uploads, validated like ``POST /api/v1/uploads``; their ids for the request.
    ValidationError keyed by the form field whose file was refused."""
    from training.uploads import read_upload

    data = form.cleaned_data
    mode = data.get("mode") or "txt2img"
    # (form field, request field, kind, (name, bytes) or None); a mask outside inpaint is left out
    sent = []
    if mode != "txt2img" and data.get("source_file"):
        upload = data["source_file"]
        sent.append(("source_file", "source_upload", "image", (upload.name, read_upload(upload))))
    if mode == "inpaint":
        upload = data.get("mask_file")
        drawn = _drawn_mask(data.get("mask_drawn") or "")
        if upload is not None:
            sent.append(("mask_file", "mask_upload", "mask", (upload.name, read_upload(upload))))
        elif drawn is not None:
            sent.append(("mask_file", "mask_upload", "mask", ("drawn-mask.png", drawn)))
    found: dict[str, str] = {}
    for field, key, kind, (name, content) in sent:
        try:
            made = upload_create(
                actor=request.principal, file_name=name or field, data=content, kind=kind
            )
        except ValidationError as exc:
            reason = " ".join(exc.message_dict.get("file", exc.messages))
            raise ValidationError({field: reason}) from None
        found[key] = str(made.pk)
    return found


def _submit(request: HttpRequest, form: GenerateForm) -> Any:
    """The job the valid form asks for, or None with the reasons attached to the form."""
    try:
        uploaded = _uploads(request, form)
    except ValidationError as exc:
        _attach_errors(form, field_messages(exc))
        return None
    body = form.to_request() | uploaded
    if "source_upload" in uploaded:  # a file chosen over the image the page started from
        body.pop("source_image", None)
    serializer = GenerationRequestSerializer(data=body)
    if not serializer.is_valid():
        _attach_errors(form, serializer_messages(serializer.errors))
        return None
    try:
        return generation_job_create(actor=request.principal, data=serializer.validated_data)
    except ValidationError as exc:
        _attach_errors(form, field_messages(exc))
    except QuotaExceeded as exc:
        form.add_error(None, exc.message)
    return None


def _initial(request: HttpRequest) -> dict[str, Any]:
    org = request.principal.org
    if request.GET.get("vary"):
        image = get_generated_image_for_org(org=org, image_id=request.GET["vary"])
        initial = initial_from_job(image.job, seed=image.seed)
        mode = request.GET.get("mode") if request.GET.get("mode") == "inpaint" else "img2img"
        return initial | {"mode": mode, "source_image": str(image.pk)}
    if request.GET.get("image"):
        image = get_generated_image_for_org(org=org, image_id=request.GET["image"])
        return initial_from_job(image.job, seed=image.seed)
    if request.GET.get("job"):
        return initial_from_job(get_generation_job_for_org(org=org, job_id=request.GET["job"]))
    return {key: value for key, value in request.GET.items() if key in ("template", "target")}


@studio_view(Action.GENERATE)
def generate(request: HttpRequest) -> HttpResponse:
    org = request.principal.org
    if request.method == "POST":
        form = GenerateForm(request.POST, request.FILES, org=org)
        if form.is_valid():
            job = _submit(request, form)
            if job is not None:
                return redirect("studio:job_detail", job_id=job.pk)
        status = 400
    else:
        form = GenerateForm(initial=_initial(request), org=org)
        status = 200
    source = _source_image(request, form)
    return render_page(
        request,
        "studio/generate.html",
        {"form": form, "source": source},
        section="generate",
        status=status,
    )


def _source_image(request: HttpRequest, form: GenerateForm) -> Any:
    """The generated image a variation starts from, shown under the mask editor."""
    value = form["source_image"].value()
    if not value:
        return None
    try:
        return get_generated_image_for_org(org=request.principal.org, image_id=value)
    except Http404:  # a bad or foreign id: the protocol names it on submit
        return None


@studio_view(Action.GENERATE)
def template_variables_partial(request: HttpRequest) -> HttpResponse:
    """The variable inputs of the chosen template (htmx swaps them in when the template changes)."""
    form = GenerateForm(initial=request.GET.dict(), org=request.principal.org)
    return render_page(request, "studio/partials/variables.html", {"form": form})
