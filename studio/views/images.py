"""Gallery, image detail (full size, metadata, download, lineage back to the job) and the image
file itself, served through the session so a copied URL never reaches another organization."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse

from generation import storage
from generation.review_selectors import gallery_for_org
from generation.review_services import REJECT_REASONS
from generation.selectors import get_generated_image_for_org, image_withheld
from models_registry.selectors import category_list_for_org
from tenants.roles import Action

from ..access import render_page, studio_view
from ..presenters import image_view

PAGE_SIZE = 48


@studio_view(Action.VIEW)
def gallery(request: HttpRequest) -> HttpResponse:
    org = request.principal.org
    status = request.GET.get("status", "")
    category = request.GET.get("category", "")
    images = gallery_for_org(org=org, status=status, category=category)
    page = Paginator(images, PAGE_SIZE).get_page(request.GET.get("page"))
    return render_page(
        request,
        "studio/gallery.html",
        {
            "page": page,
            "tiles": [image_view(image) for image in page],
            "status": status,
            "category": category,
            "categories": category_list_for_org(org=org),
        },
        section="gallery",
    )


@studio_view(Action.VIEW)
def image_detail(request: HttpRequest, image_id: str) -> HttpResponse:
    image = get_generated_image_for_org(org=request.principal.org, image_id=image_id)
    job = image.job
    review = getattr(image, "review", None)
    return render_page(
        request,
        "studio/image_detail.html",
        {
            "tile": image_view(image),
            "job": job,
            "params": sorted((job.params or {}).items()),
            "review": review,
            "reasons": REJECT_REASONS,
            "can_review": request.principal.can(Action.REVIEW) and job.status == "succeeded",
            "can_generate": request.principal.can(Action.GENERATE),
            "variations": list(image.variations.order_by("created_at")[:20]),
        },
        section="gallery",
    )


@studio_view(Action.VIEW)
def image_file(request: HttpRequest, image_id: str) -> HttpResponse:
    image = get_generated_image_for_org(org=request.principal.org, image_id=image_id)
    if image_withheld(image):
        raise Http404("This image was flagged by the safety check and is not served.")
    thumb = request.GET.get("size") == "thumb" and image.thumbnail_key
    key = image.thumbnail_key if thumb else image.storage_key
    try:
        data = storage.read_object(key)
    except (FileNotFoundError, OSError):
        raise Http404("The image file is missing from storage.") from None
    content_type = "image/webp" if key.endswith(".webp") else "image/png"
    response = HttpResponse(data, content_type=content_type)
    response["Cache-Control"] = "private, max-age=3600"
    if request.GET.get("download"):
        name = f"easel-{image.job_id}-{image.index}-seed{image.seed}.png"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
