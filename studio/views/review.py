"""Review: the queue of images awaiting a decision (filters, among them one catalog run's or one
product's images; keyboard shortcuts, bulk), one decision at a time over htmx, and the
reviewer-vs-gate agreement report."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from catalog.models import CatalogRun, Product, RunItem
from catalog.selectors import get_catalog_run_for_org, get_product_for_org
from generation.review_selectors import (
    Agreement,
    image_ids_for_org,
    published_image_list_for_org,
    review_agreement_by_template,
    review_queue_for_org,
)
from generation.review_services import (
    REJECT_REASONS,
    image_review_decide,
    image_reviews_decide_bulk,
)
from generation.selectors import get_generated_image_for_org
from generation.template_selectors import prompt_template_latest_list
from models_registry.selectors import category_list_for_org
from tenants.models import Organization
from tenants.roles import Action

from ..access import render_page, studio_view
from ..errors import first_message
from ..presenters import image_view

QUEUE_SIZE = 60


def _score(raw: str | None) -> float | None:
    try:
        return float(raw) if raw not in (None, "") else None
    except ValueError:
        return None


def _reason(request: HttpRequest) -> str:
    other = request.POST.get("reason_other", "").strip()
    return other or request.POST.get("reason", "").strip()


def _back(request: HttpRequest) -> HttpResponse:
    """Back to the queue the decision was made on (its filters kept), never off this site."""
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = ""
    return redirect(back or "studio:review_queue")


def _catalog_filters(
    org: Organization, run_id: str, product_id: str
) -> tuple[CatalogRun | None, Product | None, QuerySet | None]:
    """The run and product the queue is narrowed to (another organization's is a 404, like a
    missing one) and the run's job ids as a subquery."""
    run = get_catalog_run_for_org(org=org, run_id=run_id) if run_id else None
    product = get_product_for_org(org=org, product_id=product_id) if product_id else None
    jobs = RunItem.objects.filter(run=run).values("job_id") if run else None
    return run, product, jobs


@studio_view(Action.REVIEW)
def review_queue(request: HttpRequest) -> HttpResponse:
    org = request.principal.org
    filters = {
        "category": request.GET.get("category", ""),
        "template": request.GET.get("template", ""),
        "min_score": request.GET.get("min_score", ""),
        "max_score": request.GET.get("max_score", ""),
        "run": request.GET.get("run", ""),
        "product": request.GET.get("product", ""),
    }
    run, product, jobs = _catalog_filters(org, filters["run"], filters["product"])
    queue = review_queue_for_org(
        org=org,
        category=filters["category"],
        template=filters["template"],
        min_score=_score(filters["min_score"]),
        max_score=_score(filters["max_score"]),
        product_ref=product.pk if product else None,
        jobs=jobs,
    )
    total = queue.count()
    return render_page(
        request,
        "studio/review/queue.html",
        {
            "tiles": [image_view(image) for image in queue[:QUEUE_SIZE]],
            "total": total,
            "filters": filters,
            "run": run,
            "product": product,
            "categories": category_list_for_org(org=org),
            "templates": prompt_template_latest_list(org=org),
            "reasons": REJECT_REASONS,
            "can_generate": request.principal.can(Action.GENERATE),
        },
        section="review",
    )


@require_POST
@studio_view(Action.REVIEW)
def review_decide(request: HttpRequest, image_id: str) -> HttpResponse:
    """One decision. htmx gets the decided tile back; a plain form post goes back to the queue."""
    image = get_generated_image_for_org(org=request.principal.org, image_id=image_id)
    error = ""
    try:
        image_review_decide(
            actor=request.principal,
            image=image,
            status=request.POST.get("decision", ""),
            reason=_reason(request),
        )
    except ValidationError as exc:
        error = first_message(exc)
    image.refresh_from_db()
    if request.headers.get("HX-Request"):
        return render_page(
            request,
            "studio/review/tile.html",
            {"tile": image_view(image), "error": error, "reasons": REJECT_REASONS},
            status=200,
        )
    if error:
        messages.error(request, error)
    return _back(request)


@require_POST
@studio_view(Action.REVIEW)
def review_bulk(request: HttpRequest) -> HttpResponse:
    images = image_ids_for_org(org=request.principal.org, ids=request.POST.getlist("images"))
    decision = request.POST.get("decision", "")
    try:
        decided = image_reviews_decide_bulk(
            actor=request.principal, images=images, status=decision, reason=_reason(request)
        )
    except ValidationError as exc:
        messages.error(request, f"Nothing was changed: {first_message(exc)}")
    else:
        messages.success(request, f"{len(decided)} image(s) {decision}.")
    return _back(request)


@studio_view(Action.VIEW)
def review_report(request: HttpRequest) -> HttpResponse:
    org = request.principal.org
    by_template = review_agreement_by_template(org=org)
    return render_page(
        request,
        "studio/review/report.html",
        {
            "agreement": Agreement.total(by_template.values()),
            "by_template": by_template,
            "published": published_image_list_for_org(org=org)[:24],
        },
        section="review",
    )
