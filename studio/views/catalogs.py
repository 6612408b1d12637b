"""Catalog pages: the organization's catalogs (an editor creates one), and one catalog's page: a
CSV/JSONL upload whose row report lists every rejected line with its reason, the products with
their published images (filtered, paged), a "start run" form, its recent runs, and its schedules
(created, edited, enabled or disabled, deleted). Every write goes through the catalog services
the API uses, so a refused file, mode or cron expression gets the same message here as there."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from catalog import imports, runs, schedules, selectors, services
from catalog.models import Catalog, CatalogImport, CatalogSchedule, Product, RunMode
from generation.template_selectors import prompt_template_latest_list
from tenants.errors import ApplicationError
from tenants.models import Organization
from tenants.roles import Action

from ..access import refused, render_page, studio_view
from ..errors import field_messages, first_message

PRODUCTS_PER_PAGE = 100
REJECTIONS_SHOWN = 200
RUNS_SHOWN = 10
IMPORTS_SHOWN = 5
PUBLISHED = "published"
# The products filter: the run modes' own selections (what a run in that mode would pick).
PRODUCT_STATES = (
    ("", "All products"),
    (PUBLISHED, "With an approved image"),
    (RunMode.MISSING, "Without an approved image"),
    (RunMode.CHANGED, "Changed since their image was approved"),
)


@studio_view(Action.VIEW)
def catalog_list(request: HttpRequest) -> HttpResponse:
    org = request.principal.org
    errors: dict[str, str] = {}
    form = {"slug": "", "name": "", "default_template": ""}
    if request.method == "POST":
        if not request.principal.can(Action.TRAIN):
            return refused(request, Action.TRAIN)
        form = {k: request.POST.get(k, "").strip() for k in form}
        try:
            catalog = services.catalog_create(actor=request.principal, **form)
        except ValidationError as exc:
            errors = field_messages(exc)
        except services.CatalogExists as exc:
            errors = {"slug": exc.message}
        else:
            messages.success(request, f"Catalog {catalog.name} created: upload its products.")
            return redirect("studio:catalog_detail", slug=catalog.slug)
    return render_page(
        request,
        "studio/catalogs/list.html",
        {
            "catalogs": selectors.catalog_list_for_org(org=org),
            "runs": selectors.catalog_run_list_for_org(org=org)[:RUNS_SHOWN],
            "templates": prompt_template_latest_list(org=org),
            "form": form,
            "errors": errors,
            "can_train": request.principal.can(Action.TRAIN),
        },
        section="catalogs",
        status=400 if errors else 200,
    )


# --- one catalog's page ----------------------------------------------------------------------


def _products(catalog: Catalog, *, q: str, state: str) -> QuerySet[Product]:
    if state in (RunMode.MISSING, RunMode.CHANGED):
        products = runs.products_for_mode(catalog=catalog, mode=state)
        products = products.select_related("category", "published_image")
    else:
        products = selectors.product_list_for_catalog(catalog=catalog)
        if state == PUBLISHED:
            products = products.filter(published_image__isnull=False)
    if q:
        products = products.filter(Q(sku__icontains=q) | Q(name__icontains=q))
    return products.order_by("sku")


def _import_report(org: Organization, catalog: Catalog, import_id: str) -> CatalogImport | None:
    """The import named by ``?import=`` (another catalog's or organization's is a 404)."""
    if not import_id:
        return None
    record = selectors.get_catalog_import_for_org(org=org, import_id=import_id)
    if record.catalog_id != catalog.pk:
        raise Http404("No catalog import matches the given query.")
    return record


def _schedule_form(schedule: CatalogSchedule) -> dict[str, Any]:
    return {
        "mode": schedule.mode,
        "cron": schedule.cron,
        "interval_minutes": schedule.interval_minutes or "",
        "time_zone": schedule.time_zone,
        "enabled": schedule.enabled,
    }


def _schedule_rows(
    org: Organization, catalog: Catalog, edited: tuple[int, dict[str, Any], dict[str, str]] | None
) -> list[dict[str, Any]]:
    """Each schedule with its edit form: the saved values, or what was typed into the one whose
    change was refused (``edited``: its id, the form and the errors)."""
    rows = []
    for schedule in selectors.catalog_schedule_list_for_org(org=org).filter(catalog=catalog):
        form, errors = _schedule_form(schedule), {}
        if edited is not None and edited[0] == schedule.pk:
            form, errors = {**form, **edited[1]}, edited[2]
        rows.append(
            {
                "schedule": schedule,
                "form": form,
                "errors": errors,
                "next_run_at": schedules.next_run_at(schedule),
            }
        )
    return rows


def _catalog_page(
    request: HttpRequest,
    catalog: Catalog,
    *,
    status: int = 200,
    edited: tuple[int, dict[str, Any], dict[str, str]] | None = None,
    **forms: Any,
) -> HttpResponse:
    """The catalog page; a refused form passes what was typed and its errors in ``forms``."""
    org = request.principal.org
    filters = {"q": request.GET.get("q", "").strip(), "state": request.GET.get("state", "")}
    products = _products(catalog, q=filters["q"], state=filters["state"])
    page = Paginator(products, PRODUCTS_PER_PAGE).get_page(request.GET.get("page"))
    report = _import_report(org, catalog, request.GET.get("import", ""))
    context: dict[str, Any] = {
        "catalog": catalog,
        "page": page,
        "filters": filters,
        "states": PRODUCT_STATES,
        "report": report,
        "rejections": report.rejections.all()[:REJECTIONS_SHOWN] if report else [],
        "rejections_shown": REJECTIONS_SHOWN,
        "imports": selectors.catalog_import_list_for_org(org=org).filter(catalog=catalog)[
            :IMPORTS_SHOWN
        ],
        "runs": selectors.catalog_run_list_for_org(org=org).filter(catalog=catalog)[:RUNS_SHOWN],
        "schedules": _schedule_rows(org, catalog, edited),
        "modes": RunMode.choices,
        "formats": imports.FORMATS,
        "upload": {"format": "", "error": ""},
        "run_form": {"mode": RunMode.MISSING, "error": ""},
        "schedule_form": {
            "mode": RunMode.MISSING,
            "cron": "",
            "interval_minutes": "",
            "time_zone": org.time_zone,
            "enabled": True,
        },
        "schedule_errors": {},
        "can_train": request.principal.can(Action.TRAIN),
        "can_review": request.principal.can(Action.REVIEW),
    }
    context.update(forms)
    return render_page(
        request, "studio/catalogs/detail.html", context, section="catalogs", status=status
    )


def _to_catalog(catalog: Catalog, query: QueryDict | None = None, anchor: str = "") -> HttpResponse:
    url = reverse("studio:catalog_detail", args=[catalog.slug])
    if query:
        url += f"?{query.urlencode()}"
    return redirect(url + (f"#{anchor}" if anchor else ""))


@studio_view(Action.VIEW)
def catalog_detail(request: HttpRequest, slug: str) -> HttpResponse:
    catalog = selectors.get_catalog_for_org(org=request.principal.org, slug=slug)
    return _catalog_page(request, catalog)


@studio_view(Action.TRAIN)
def catalog_upload(request: HttpRequest, slug: str) -> HttpResponse:
    """Import the uploaded file; the catalog page then shows its row report."""
    catalog = selectors.get_catalog_for_org(org=request.principal.org, slug=slug)
    if request.method != "POST":  # e.g. the pager of a page shown after a refused form
        return _to_catalog(catalog, request.GET)
    file_format = request.POST.get("format", "")
    upload = request.FILES.get("file")
    if upload is None:
        error = "Choose a CSV or JSONL file to upload."
    else:
        try:
            record = imports.catalog_import(
                actor=request.principal,
                catalog=catalog,
                stream=upload,
                file_name=upload.name or "upload",
                size=upload.size,
                file_format=file_format,
            )
        except ApplicationError as exc:  # the file as a whole is unreadable or too large
            error = exc.message
        else:
            messages.success(
                request,
                f"Imported {record.file_name}: {record.rows_accepted} row(s) accepted, "
                f"{record.rows_rejected} rejected.",
            )
            return _to_catalog(catalog, QueryDict(f"import={record.pk}"), anchor="import-report")
    return _catalog_page(
        request, catalog, upload={"format": file_format, "error": error}, status=400
    )


@studio_view(Action.TRAIN)
def catalog_run_start(request: HttpRequest, slug: str) -> HttpResponse:
    catalog = selectors.get_catalog_for_org(org=request.principal.org, slug=slug)
    if request.method != "POST":
        return _to_catalog(catalog, request.GET)
    mode = request.POST.get("mode", "")
    try:
        run = runs.catalog_run_create(actor=request.principal, catalog=catalog, mode=mode)
    except ValidationError as exc:
        return _catalog_page(
            request, catalog, run_form={"mode": mode, "error": first_message(exc)}, status=400
        )
    messages.success(request, f"Run started ({run.get_mode_display().lower()}).")
    return redirect("studio:catalog_run_detail", run_id=run.pk)


# --- schedules ---------------------------------------------------------------------------------


def _posted_schedule(post: QueryDict) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """From a schedule form: what was typed (to show again), the service's values and the
    errors found before the service is asked. Only the fields the form sent are values, so the
    enable/disable button changes nothing else. Giving cron and an interval together is refused
    here: an edit would otherwise keep the cron expression and drop the interval silently."""
    form: dict[str, Any] = {k: post[k].strip() for k in ("mode", "cron", "time_zone") if k in post}
    values: dict[str, Any] = dict(form)
    errors: dict[str, str] = {}
    if "enabled" in post:  # a hidden "off" before the checkbox, so unticking is sent too
        form["enabled"] = values["enabled"] = post.get("enabled") == "on"
    if "interval_minutes" in post:
        typed = form["interval_minutes"] = post["interval_minutes"].strip()
        values["interval_minutes"] = None
        if typed:
            try:
                values["interval_minutes"] = int(typed)
            except ValueError:
                errors["interval_minutes"] = "Enter a whole number of minutes, or leave it empty."
    if values.get("cron") and values.get("interval_minutes") is not None:
        errors["cron"] = "Give either a cron expression or an interval in minutes, not both."
    return form, values, errors


@studio_view(Action.TRAIN)
def schedule_create(request: HttpRequest, slug: str) -> HttpResponse:
    catalog = selectors.get_catalog_for_org(org=request.principal.org, slug=slug)
    if request.method != "POST":
        return _to_catalog(catalog, request.GET)
    form, values, errors = _posted_schedule(request.POST)
    if not errors:
        try:
            schedules.catalog_schedule_create(actor=request.principal, catalog=catalog, **values)
        except ValidationError as exc:
            errors = field_messages(exc)
        else:
            messages.success(request, "Schedule created.")
            return _to_catalog(catalog, anchor="schedules")
    return _catalog_page(
        request,
        catalog,
        schedule_form={"enabled": False, **form},
        schedule_errors=errors,
        status=400,
    )


@studio_view(Action.TRAIN)
def schedule_update(request: HttpRequest, schedule_id: int) -> HttpResponse:
    schedule = selectors.get_catalog_schedule_for_org(
        org=request.principal.org, schedule_id=schedule_id
    )
    if request.method != "POST":
        return _to_catalog(schedule.catalog, anchor="schedules")
    form, values, errors = _posted_schedule(request.POST)
    if values.get("time_zone") == "":
        values["time_zone"] = request.principal.org.time_zone
    if not errors:
        try:
            schedule = schedules.catalog_schedule_update(
                actor=request.principal, schedule=schedule, changes=values
            )
        except ValidationError as exc:
            errors = field_messages(exc)
        else:
            state = "enabled" if schedule.enabled else "disabled"
            messages.success(request, f"Schedule {schedule.pk} saved ({state}).")
            return _to_catalog(schedule.catalog, anchor="schedules")
    catalog = selectors.get_catalog_for_org(org=request.principal.org, slug=schedule.catalog.slug)
    return _catalog_page(request, catalog, edited=(schedule.pk, form, errors), status=400)


@require_POST
@studio_view(Action.TRAIN)
def schedule_delete(request: HttpRequest, schedule_id: int) -> HttpResponse:
    schedule = selectors.get_catalog_schedule_for_org(
        org=request.principal.org, schedule_id=schedule_id
    )
    catalog, number = schedule.catalog, schedule.pk
    schedules.catalog_schedule_delete(actor=request.principal, schedule=schedule)
    messages.success(request, f"Schedule {number} deleted.")
    return _to_catalog(catalog, anchor="schedules")
