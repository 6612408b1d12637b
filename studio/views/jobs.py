"""Jobs: the organization's generation jobs and one job's live page (htmx polls a fragment
until the job finishes: status, progress, attempts, quality scores and reasons, the images)."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from generation.selectors import generation_job_list_for_org, get_generation_job_for_org
from generation.services import generation_job_cancel
from tenants.errors import Conflict
from tenants.roles import Action

from ..access import render_page, studio_view
from ..presenters import job_view

PAGE_SIZE = 25


@studio_view(Action.VIEW)
def job_list(request: HttpRequest) -> HttpResponse:
    jobs = generation_job_list_for_org(org=request.principal.org).select_related("created_by")
    status = request.GET.get("status", "")
    if status:
        jobs = jobs.filter(status=status)
    page = Paginator(jobs.order_by("-created_at"), PAGE_SIZE).get_page(request.GET.get("page"))
    return render_page(
        request, "studio/jobs/list.html", {"page": page, "status": status}, section="jobs"
    )


@studio_view(Action.VIEW)
def job_detail(request: HttpRequest, job_id: str) -> HttpResponse:
    job = get_generation_job_for_org(org=request.principal.org, job_id=job_id)
    context = {"job": job_view(job), "can_generate": request.principal.can(Action.GENERATE)}
    return render_page(request, "studio/jobs/detail.html", context, section="jobs")


@studio_view(Action.VIEW)
def job_status(request: HttpRequest, job_id: str) -> HttpResponse:
    """The live part of the job page; it stops polling itself once the job has finished."""
    job = get_generation_job_for_org(org=request.principal.org, job_id=job_id)
    context = {"job": job_view(job), "can_generate": request.principal.can(Action.GENERATE)}
    return render_page(request, "studio/jobs/status.html", context)


@require_POST
@studio_view(Action.GENERATE)
def job_cancel(request: HttpRequest, job_id: str) -> HttpResponse:
    job = get_generation_job_for_org(org=request.principal.org, job_id=job_id)
    try:
        generation_job_cancel(actor=request.principal, job=job)
    except Conflict as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Cancel requested.")
    return redirect("studio:job_detail", job_id=job.pk)
