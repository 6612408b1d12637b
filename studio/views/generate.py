"""Generate: pick a model or category and a template, fill its variables, set the unified
parameters, submit. The request goes through the same protocol serializer and the same
``generation_job_create`` service as ``POST /api/v1/generations``."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from generation.protocol import GenerationRequestSerializer
from generation.selectors import get_generated_image_for_org, get_generation_job_for_org
from generation.services import generation_job_create
from tenants.quotas import QuotaExceeded
from tenants.roles import Action

from ..access import render_page, studio_view
from ..errors import field_messages, serializer_messages
from ..forms import GenerateForm, initial_from_job

# Protocol field → the form field that shows its error.
FIELD_FOR = {"model": "target", "category": "target", "template_version": "template"}


def _attach_errors(form: GenerateForm, errors: dict[str, str]) -> None:
    for name, text in errors.items():
        field = FIELD_FOR.get(name, name)
        form.add_error(field if field in form.fields else None, text)


def _initial(request: HttpRequest) -> dict[str, Any]:
    org = request.principal.org
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
        form = GenerateForm(request.POST, org=org)
        if form.is_valid():
            serializer = GenerationRequestSerializer(data=form.to_request())
            if not serializer.is_valid():
                _attach_errors(form, serializer_messages(serializer.errors))
            else:
                try:
                    job = generation_job_create(
                        actor=request.principal, data=serializer.validated_data
                    )
                except ValidationError as exc:
                    _attach_errors(form, field_messages(exc))
                except QuotaExceeded as exc:
                    form.add_error(None, exc.message)
                else:
                    return redirect("studio:job_detail", job_id=job.pk)
        status = 400
    else:
        form = GenerateForm(initial=_initial(request), org=org)
        status = 200
    return render_page(
        request, "studio/generate.html", {"form": form}, section="generate", status=status
    )


@studio_view(Action.GENERATE)
def template_variables_partial(request: HttpRequest) -> HttpResponse:
    """The variable inputs of the chosen template (htmx swaps them in when the template changes)."""
    form = GenerateForm(initial=request.GET.dict(), org=request.principal.org)
    return render_page(request, "studio/partials/variables.html", {"form": form})
