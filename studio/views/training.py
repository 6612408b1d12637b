"""Training pages: an editor uploads photos of a product (each refused file shown with its reason),
picks a category and a rare token and starts a fine-tuning job; everyone follows its progress, loss
curve and log live; the candidate's validation images stand beside the base model's for the same
prompts and seeds, and an admin promotes the candidate from here."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect

from generation import storage
from models_registry.selectors import category_list_for_org, get_category_for_org
from tenants.roles import Action
from training import selectors, services
from training.models import TrainingJob
from training.uploads import MAX_IMAGES, read_upload

from ..access import refused, render_page, studio_view
from ..errors import field_messages

CURVE_WIDTH, CURVE_HEIGHT = 480, 120


def loss_curve_points(curve: list[list[float]]) -> str:
    """The loss curve as SVG polyline points (step on x, loss on y, both scaled to the box)."""
    if len(curve) < 2:
        return ""
    steps = [float(s) for s, _ in curve]
    losses = [float(v) for _, v in curve]
    low, high = min(losses), max(losses)
    span_x, span_y = (steps[-1] - steps[0]) or 1.0, (high - low) or 1.0
    return " ".join(
        f"{(s - steps[0]) / span_x * CURVE_WIDTH:.1f},"
        f"{CURVE_HEIGHT - (v - low) / span_y * CURVE_HEIGHT:.1f}"
        for s, v in zip(steps, losses, strict=True)
    )


def _side_by_side(job: TrainingJob) -> list[dict[str, Any]]:
    """Per (prompt, seed): the candidate's validation image and the base model's."""
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for image in job.validation.all():
        if image.model_version_id not in (None, job.output_version_id):
            continue  # production's images, made only to decide an auto-promotion
        row = rows.setdefault(
            (image.prompt, image.seed), {"prompt": image.prompt, "seed": image.seed}
        )
        row["candidate" if image.model_version_id else "base"] = image
    return [rows[key] for key in sorted(rows)]


@studio_view(Action.VIEW)
def training_list(request: HttpRequest) -> HttpResponse:
    org = request.principal.org
    errors: dict[str, str] = {}
    form: dict[str, str] = {"rare_token": "sks", "max_steps": ""}
    if request.method == "POST":
        if not request.principal.can(Action.TRAIN):
            return refused(request, Action.TRAIN)
        form = {
            k: request.POST.get(k, "")
            for k in ("category", "rare_token", "class_prompt", "instance_prompt", "max_steps")
        }
        uploads = request.FILES.getlist("images")[: MAX_IMAGES + 1]
        try:
            category = get_category_for_org(org=org, slug=form["category"])
        except Http404:
            errors["category"] = "Pick one of your categories."
        else:
            params: dict[str, Any] = {}
            if form["max_steps"].strip():
                try:
                    params["max_steps"] = int(form["max_steps"])
                except ValueError:
                    params["max_steps"] = form["max_steps"]  # refused by the service, by name
            try:
                job = services.training_job_create(
                    actor=request.principal,
                    category=category,
                    files=[(f.name, read_upload(f)) for f in uploads],
                    rare_token=form["rare_token"].strip(),
                    class_prompt=form["class_prompt"],
                    instance_prompt=form["instance_prompt"],
                    params=params,
                )
            except ValidationError as exc:
                errors = field_messages(exc)
                if hasattr(exc, "error_dict") and "images" in exc.error_dict:
                    errors["images"] = "\n".join(exc.message_dict["images"])
            else:
                messages.success(request, "Training queued.")
                return redirect("studio:training_detail", job_id=job.pk)
    jobs = selectors.training_job_list_for_org(org=org)[:50]
    return render_page(
        request,
        "studio/training/list.html",
        {
            "jobs": jobs,
            "categories": category_list_for_org(org=org),
            "form": form,
            "errors": errors,
            "image_errors": errors.get("images", "").split("\n") if errors.get("images") else [],
            "can_train": request.principal.can(Action.TRAIN),
        },
        section="training",
        status=400 if errors else 200,
    )


def _detail_context(request: HttpRequest, job: TrainingJob) -> dict[str, Any]:
    return {
        "job": job,
        "points": loss_curve_points(job.loss_curve or []),
        "curve_size": (CURVE_WIDTH, CURVE_HEIGHT),
        "last_loss": job.loss_curve[-1][1] if job.loss_curve else None,
        "pairs": _side_by_side(job),
        "can_train": request.principal.can(Action.TRAIN),
        "can_promote": request.principal.can(Action.MANAGE_MODELS),
        "params_json": json.dumps(job.params, indent=1, sort_keys=True),
    }


@studio_view(Action.VIEW)
def training_detail(request: HttpRequest, job_id: str) -> HttpResponse:
    job = selectors.get_training_job_for_org(org=request.principal.org, job_id=job_id)
    return render_page(
        request, "studio/training/detail.html", _detail_context(request, job), section="training"
    )


@studio_view(Action.VIEW)
def training_status(request: HttpRequest, job_id: str) -> HttpResponse:
    """The live part of the page (htmx polls it until the job finishes)."""
    job = selectors.get_training_job_for_org(org=request.principal.org, job_id=job_id)
    return render_page(request, "studio/training/status.html", _detail_context(request, job))


@studio_view(Action.TRAIN)
def training_cancel(request: HttpRequest, job_id: str) -> HttpResponse:
    if request.method != "POST":
        return redirect("studio:training_detail", job_id=job_id)
    job = selectors.get_training_job_for_org(org=request.principal.org, job_id=job_id)
    try:
        services.training_job_cancel(actor=request.principal, job=job)
    except services.TrainingNotCancelable as exc:
        messages.error(request, exc.message)
    return redirect("studio:training_detail", job_id=job.pk)


@studio_view(Action.VIEW)
def validation_file(request: HttpRequest, image_id: int) -> HttpResponse:
    image = selectors.get_validation_image_for_org(org=request.principal.org, image_id=image_id)
    try:
        data = storage.read_object(image.storage_key)
    except (FileNotFoundError, OSError):
        raise Http404("The image file is missing from storage.") from None
    response = HttpResponse(data, content_type="image/png")
    response["Cache-Control"] = "private, max-age=3600"
    return response
