"""``/api/v1/catalogs``, ``/api/v1/catalog-imports``, ``/api/v1/catalog-runs`` and
``/api/v1/schedules``. Another organization's catalog, import, run or schedule is the same 404 as
a missing one.

    curl -X POST -H "Authorization: Bearer $KEY" -d '{"slug": "spring"}' .../api/v1/catalogs
    curl -F file=@products.csv -H "Authorization: Bearer $KEY" .../api/v1/catalogs/spring/import
    curl -X POST -d '{"catalog": "spring", "mode": "missing"}' ... .../api/v1/catalog-runs
    curl -H "Authorization: Bearer $KEY" .../api/v1/catalog-runs/<id>/export
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import F, QuerySet
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import mixins, pagination, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from tenants.api.base import (
    CreatedCursorPagination,
    OrgScopedMixin,
    ResponseModelSerializer,
    StrictSerializer,
)
from tenants.api.filters import AnyOfFilter
from tenants.api.idempotency import with_idempotency
from tenants.api.schema import error_response
from tenants.models import Organization
from tenants.roles import Action

from . import exports, imports, runs, schedules, selectors, services
from .models import (
    Catalog,
    CatalogImport,
    CatalogRun,
    CatalogSchedule,
    ItemStatus,
    Product,
    RunItem,
    RunMode,
    RunStatus,
)

REJECTIONS_INLINE = 1000


class IdCursorPagination(pagination.CursorPagination):
    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 500


# --- catalogs, imports and products ----------------------------------------------------------


class CatalogCreateSerializer(StrictSerializer):
    slug = serializers.SlugField(max_length=80)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    default_template = serializers.SlugField(
        max_length=80,
        required=False,
        allow_blank=True,
        help_text="Template application for rows that name none; empty: the name is the prompt.",
    )


class CatalogSerializer(ResponseModelSerializer):
    product_count = serializers.IntegerField()
    links = serializers.SerializerMethodField()

    class Meta:
        model = Catalog
        fields = ["slug", "name", "default_template", "product_count", "created_at", "links"]

    def get_links(self, obj: Catalog) -> dict[str, str]:
        return {
            "self": reverse("v1:catalog-detail", args=[obj.slug]),
            "import": reverse("v1:catalog-import-file", args=[obj.slug]),
            "products": reverse("v1:catalog-products", args=[obj.slug]),
        }


class ImportUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="CSV (header row) or JSONL, UTF-8.")
    format = serializers.ChoiceField(
        choices=imports.FORMATS,
        required=False,
        help_text="Defaults to the file name's extension (.csv, .jsonl or .ndjson).",
    )


class RejectionSerializer(serializers.Serializer):
    line = serializers.IntegerField(read_only=True)
    sku = serializers.CharField(read_only=True)
    reason = serializers.CharField(read_only=True)


class CatalogImportSerializer(ResponseModelSerializer):
    catalog = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    rows_accepted = serializers.IntegerField()
    rejections = serializers.SerializerMethodField()
    rejections_truncated = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    class Meta:
        model = CatalogImport
        fields = [
            "id",
            "catalog",
            "file_name",
            "file_format",
            "rows_total",
            "rows_accepted",
            "rows_created",
            "rows_updated",
            "rows_unchanged",
            "rows_rejected",
            "rejections",
            "rejections_truncated",
            "created_at",
            "finished_at",
            "links",
        ]

    @extend_schema_field(RejectionSerializer(many=True))
    def get_rejections(self, obj: CatalogImport) -> list[dict[str, Any]]:
        rows = obj.rejections.values("line", "sku", "reason")[:REJECTIONS_INLINE]
        return list(rows)

    def get_rejections_truncated(self, obj: CatalogImport) -> bool:
        return obj.rows_rejected > REJECTIONS_INLINE

    def get_links(self, obj: CatalogImport) -> dict[str, str]:
        return {
            "self": reverse("v1:catalog-import-detail", args=[obj.pk]),
            "rejections": reverse("v1:catalog-import-rejections", args=[obj.pk]),
        }


class ProductSerializer(ResponseModelSerializer):
    category = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    published_image = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    changed = serializers.SerializerMethodField(
        help_text="Published, but the row changed since that image was made."
    )
    image_url = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = [
            "sku",
            "name",
            "category",
            "template",
            "attributes",
            "content_hash",
            "published_image",
            "published_at",
            "changed",
            "image_url",
            "updated_at",
        ]

    def get_changed(self, obj: Product) -> bool:
        return bool(obj.published_image_id) and obj.published_hash != obj.content_hash

    def get_image_url(self, obj: Product) -> str | None:
        if not obj.published_image_id:
            return None
        return reverse("v1:image-download", args=[obj.published_image_id])


YES_NO = (("true", "true"), ("false", "false"))


class ProductFilter(django_filters.FilterSet):
    sku = django_filters.CharFilter(field_name="sku")
    category = django_filters.CharFilter(field_name="category__slug")
    template = django_filters.CharFilter(field_name="template")
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Name contains")
    published = django_filters.ChoiceFilter(choices=YES_NO, method="filter_published")
    changed = django_filters.ChoiceFilter(choices=YES_NO, method="filter_changed")

    class Meta:
        model = Product
        fields = ["sku", "category", "template"]

    def filter_published(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(published_image__isnull=value != "true")

    def filter_changed(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        changed = queryset.filter(published_image__isnull=False).exclude(
            published_hash=F("content_hash")
        )
        return changed if value == "true" else queryset.exclude(pk__in=changed.values("pk"))


PRODUCT_PARAMETERS = [
    OpenApiParameter("sku", str, description="Exactly this SKU."),
    OpenApiParameter("category", str, description="Category slug."),
    OpenApiParameter("template", str, description="Template application."),
    OpenApiParameter("q", str, description="Name contains (case-insensitive)."),
    OpenApiParameter(
        "published", str, enum=["true", "false"], description="Has an approved image."
    ),
    OpenApiParameter(
        "changed", str, enum=["true", "false"], description="Changed since its image was approved."
    ),
]


def _filtered(
    filterset: type[django_filters.FilterSet], request: Request, queryset: QuerySet
) -> QuerySet:
    """``queryset`` through ``filterset``; an invalid value is a 400 naming the parameter."""
    f = filterset(request.query_params, queryset=queryset, request=request)
    if not f.is_valid():
        raise serializers.ValidationError(f.errors)
    return f.qs


class CatalogViewSet(
    OrgScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    queryset = Catalog.objects.none()
    serializer_class = CatalogSerializer
    filterset_class = None
    pagination_class = CreatedCursorPagination
    lookup_field = "slug"
    lookup_value_regex = "[-a-zA-Z0-9_]+"
    required_actions = {"create": Action.TRAIN, "import_file": Action.TRAIN}

    def scoped_queryset(self, org: Organization) -> QuerySet[Catalog]:
        return selectors.catalog_list_for_org(org=org)

    @extend_schema(
        request=CatalogCreateSerializer,
        responses={
            201: CatalogSerializer,
            409: error_response("Your organization already has a catalog with this slug."),
        },
    )
    def create(self, request: Request) -> Response:
        s = CatalogCreateSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        catalog = services.catalog_create(actor=request.principal, **s.validated_data)
        catalog = selectors.get_catalog_for_org(org=request.principal.org, slug=catalog.slug)
        return Response(
            CatalogSerializer(catalog).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": reverse("v1:catalog-detail", args=[catalog.slug])},
        )

    @extend_schema(
        request={"multipart/form-data": ImportUploadSerializer},
        responses={
            201: CatalogImportSerializer,
            413: error_response("The file has more bytes or rows than the platform accepts."),
        },
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="import",
        url_name="import-file",
        parser_classes=[MultiPartParser, FormParser],
    )
    def import_file(self, request: Request, slug: str) -> Response:
        """Upsert the file's rows by SKU; the response counts them and lists the rejected ones
        with their line and reason (all of them under ``links.rejections``)."""
        catalog = self.get_object()
        s = ImportUploadSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        upload = s.validated_data["file"]
        record = imports.catalog_import(
            actor=request.principal,
            catalog=catalog,
            stream=upload,
            file_name=upload.name or "upload",
            size=upload.size,
            file_format=s.validated_data.get("format", ""),
        )
        return Response(
            CatalogImportSerializer(record).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": reverse("v1:catalog-import-detail", args=[record.pk])},
        )

    @extend_schema(responses=ProductSerializer(many=True), parameters=PRODUCT_PARAMETERS)
    @action(
        detail=True,
        methods=["get"],
        pagination_class=IdCursorPagination,
        serializer_class=ProductSerializer,
    )
    def products(self, request: Request, slug: str) -> Response:
        """The catalog's products (rows) with their published image; filter by sku, category,
        template, name (``q``), ``published`` and ``changed``."""
        catalog = self.get_object()
        queryset = _filtered(
            ProductFilter, request, selectors.product_list_for_catalog(catalog=catalog)
        )
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(ProductSerializer(page, many=True).data)


class CatalogImportViewSet(OrgScopedMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = CatalogImport.objects.none()
    serializer_class = CatalogImportSerializer

    def scoped_queryset(self, org: Organization) -> QuerySet[CatalogImport]:
        return selectors.catalog_import_list_for_org(org=org)

    @extend_schema(responses=RejectionSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=IdCursorPagination)
    def rejections(self, request: Request, pk: str) -> Response:
        """Every rejected row of the import, in line order."""
        record = self.get_object()
        page = self.paginate_queryset(record.rejections.order_by("id"))
        return self.get_paginated_response(RejectionSerializer(page, many=True).data)


# --- runs ------------------------------------------------------------------------------------


class RunCreateSerializer(StrictSerializer):
    catalog = serializers.SlugField(help_text="The catalog's slug.")
    mode = serializers.ChoiceField(
        choices=RunMode.choices,
        help_text="all: every product; missing: those without an approved image; changed: "
        "those whose row changed since their image was approved.",
    )


class ProgressSerializer(serializers.Serializer):
    counts = serializers.DictField(child=serializers.IntegerField(), read_only=True)
    total = serializers.IntegerField(read_only=True)
    finished = serializers.IntegerField(read_only=True)
    eta_seconds = serializers.FloatField(read_only=True, allow_null=True)


class CatalogRunListSerializer(serializers.ListSerializer):
    """A page of runs counts the items of all its runs in one query, not one query per run."""

    def to_representation(self, data: Any) -> list[dict[str, Any]]:
        page = list(data.all() if isinstance(data, QuerySet) else data)
        self.child.context["progress"] = runs.run_progress_by_run(page)
        return super().to_representation(page)


class CatalogRunSerializer(ResponseModelSerializer):
    catalog = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    schedule = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    progress = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    class Meta:
        model = CatalogRun
        fields = [
            "id",
            "catalog",
            "mode",
            "status",
            "paused_reason",
            "schedule",
            "items_total",
            "progress",
            "export_status",
            "export_error",
            "exported_at",
            "created_at",
            "started_at",
            "finished_at",
            "links",
        ]
        list_serializer_class = CatalogRunListSerializer

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, obj: CatalogRun) -> dict[str, Any]:
        page = self.context.get("progress") or {}
        p = page[obj.pk] if obj.pk in page else runs.run_progress(obj)
        return {
            "counts": p.counts,
            "total": p.total,
            "finished": p.finished,
            "eta_seconds": p.eta_seconds,
        }

    def get_links(self, obj: CatalogRun) -> dict[str, str]:
        return {
            name: reverse(f"v1:catalog-run-{suffix}", args=[obj.pk])
            for name, suffix in (
                ("self", "detail"),
                ("items", "items"),
                ("pause", "pause"),
                ("resume", "resume"),
                ("cancel", "cancel"),
                ("export", "export"),
            )
        }


class RunItemSerializer(ResponseModelSerializer):
    sku = serializers.CharField(source="product.sku")
    job = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = RunItem
        fields = ["sku", "status", "job", "error", "submitted_at", "finished_at"]


class ExportSerializer(serializers.Serializer):
    manifest_url = serializers.CharField(read_only=True)
    zip_url = serializers.CharField(read_only=True)
    expires_at = serializers.DateTimeField(read_only=True)
    exported_at = serializers.DateTimeField(read_only=True)


class RunFilter(django_filters.FilterSet):
    catalog = django_filters.CharFilter(field_name="catalog__slug")
    status = AnyOfFilter(choices=RunStatus.choices)
    mode = django_filters.ChoiceFilter(choices=RunMode.choices)

    class Meta:
        model = CatalogRun
        fields = ["catalog", "status", "mode"]


class ItemFilter(django_filters.FilterSet):
    status = AnyOfFilter(choices=ItemStatus.choices)

    class Meta:
        model = RunItem
        fields = ["status"]


ITEM_PARAMETERS = [
    OpenApiParameter(
        "status", str, many=True, enum=ItemStatus.values, description="Items in these statuses."
    )
]


class CatalogRunViewSet(
    OrgScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    queryset = CatalogRun.objects.none()
    serializer_class = CatalogRunSerializer
    filterset_class = RunFilter
    pagination_class = CreatedCursorPagination
    lookup_value_regex = "[0-9a-fA-F-]{32,36}"
    required_actions = {
        "create": Action.TRAIN,
        "pause": Action.TRAIN,
        "resume": Action.TRAIN,
        "cancel": Action.TRAIN,
        "export": Action.VIEW,  # GET the links, POST a rebuild: what catalog_export_request asks
    }

    def scoped_queryset(self, org: Organization) -> QuerySet[CatalogRun]:
        return selectors.catalog_run_list_for_org(org=org)

    def _body(self, run: CatalogRun, code: int = status.HTTP_200_OK) -> Response:
        run = selectors.get_catalog_run_for_org(org=self.request.principal.org, run_id=run.pk)
        return Response(CatalogRunSerializer(run).data, status=code)

    @extend_schema(
        request=RunCreateSerializer,
        responses={
            202: CatalogRunSerializer,
            404: error_response("No such catalog in your organization."),
        },
    )
    def create(self, request: Request) -> Response:
        """Start a run: its products are selected and submitted in the background."""
        return with_idempotency(request, lambda: self._create(request), view=self)

    def _create(self, request: Request) -> Response:
        s = RunCreateSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        catalog = selectors.get_catalog_for_org(
            org=request.principal.org, slug=s.validated_data["catalog"]
        )
        run = runs.catalog_run_create(
            actor=request.principal, catalog=catalog, mode=s.validated_data["mode"]
        )
        response = self._body(run, status.HTTP_202_ACCEPTED)
        response["Location"] = reverse("v1:catalog-run-detail", args=[run.pk])
        return response

    @extend_schema(responses=RunItemSerializer(many=True), parameters=ITEM_PARAMETERS)
    @action(
        detail=True,
        methods=["get"],
        filterset_class=None,
        pagination_class=IdCursorPagination,
        serializer_class=RunItemSerializer,
    )
    def items(self, request: Request, pk: str) -> Response:
        """The run's items, one per product, with their status and job."""
        run = self.get_object()
        queryset = _filtered(ItemFilter, request, selectors.run_item_list(run=run))
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(RunItemSerializer(page, many=True).data)

    @extend_schema(
        request=None,
        responses={
            200: CatalogRunSerializer,
            409: error_response("The run is not running (or pending)."),
        },
    )
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str) -> Response:
        """Stop submitting; the jobs already submitted finish."""
        return self._body(runs.catalog_run_pause(actor=request.principal, run=self.get_object()))

    @extend_schema(
        request=None,
        responses={200: CatalogRunSerializer, 409: error_response("The run is not paused.")},
    )
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str) -> Response:
        return self._body(runs.catalog_run_resume(actor=request.principal, run=self.get_object()))

    @extend_schema(
        request=None,
        responses={200: CatalogRunSerializer, 409: error_response("The run has completed.")},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        """Cancel the queued items and the submitted jobs; images already made stay."""
        return self._body(runs.catalog_run_cancel(actor=request.principal, run=self.get_object()))

    @extend_schema(
        methods=["GET"],
        request=None,
        responses={
            200: ExportSerializer,
            409: error_response("The export is not built yet (or failed); POST to rebuild."),
        },
    )
    @extend_schema(methods=["POST"], request=None, responses={202: CatalogRunSerializer})
    @action(detail=True, methods=["get", "post"])
    def export(self, request: Request, pk: str) -> Response:
        """GET: expiring links to the manifest CSV and the ZIP of approved images. POST:
        rebuild them (e.g. after more reviews), in the background."""
        run = self.get_object()
        if request.method == "POST":
            exports.catalog_export_request(run=run, actor=request.principal)
            return self._body(run, status.HTTP_202_ACCEPTED)
        links = exports.export_links(run)
        for key in ("manifest_url", "zip_url"):
            if links[key].startswith("/"):
                links[key] = request.build_absolute_uri(links[key])
        return Response(ExportSerializer(links).data)


# --- schedules -------------------------------------------------------------------------------


class ScheduleWriteSerializer(StrictSerializer):
    catalog = serializers.SlugField(help_text="The catalog's slug (create only).")
    mode = serializers.ChoiceField(choices=RunMode.choices, default=RunMode.MISSING)
    cron = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        help_text="Five fields: minute hour day month weekday, in time_zone.",
    )
    interval_minutes = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    time_zone = serializers.CharField(
        max_length=64,
        required=False,
        allow_blank=True,
        help_text="IANA name; defaults to the organization's.",
    )
    enabled = serializers.BooleanField(default=True)


class ScheduleUpdateSerializer(ScheduleWriteSerializer):
    catalog = None  # type: ignore[assignment]
    mode = serializers.ChoiceField(choices=RunMode.choices, required=False)
    enabled = serializers.BooleanField(required=False)


class ScheduleSerializer(ResponseModelSerializer):
    catalog = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    next_run_at = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    class Meta:
        model = CatalogSchedule
        fields = [
            "id",
            "catalog",
            "mode",
            "cron",
            "interval_minutes",
            "time_zone",
            "enabled",
            "last_run_at",
            "next_run_at",
            "created_at",
            "links",
        ]

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_next_run_at(self, obj: CatalogSchedule) -> str | None:
        when = schedules.next_run_at(obj)
        return when.isoformat() if when else None

    def get_links(self, obj: CatalogSchedule) -> dict[str, str]:
        return {"self": reverse("v1:schedule-detail", args=[obj.pk])}


class ScheduleViewSet(
    OrgScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    queryset = CatalogSchedule.objects.none()
    serializer_class = ScheduleSerializer
    pagination_class = CreatedCursorPagination
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    required_actions = {
        "create": Action.TRAIN,
        "partial_update": Action.TRAIN,
        "destroy": Action.TRAIN,
    }

    def scoped_queryset(self, org: Organization) -> QuerySet[CatalogSchedule]:
        return selectors.catalog_schedule_list_for_org(org=org)

    @extend_schema(
        request=ScheduleWriteSerializer,
        responses={
            201: ScheduleSerializer,
            404: error_response("No such catalog in your organization."),
        },
    )
    def create(self, request: Request) -> Response:
        s = ScheduleWriteSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        v = dict(s.validated_data)
        catalog = selectors.get_catalog_for_org(org=request.principal.org, slug=v.pop("catalog"))
        schedule = schedules.catalog_schedule_create(actor=request.principal, catalog=catalog, **v)
        return Response(
            ScheduleSerializer(schedule).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": reverse("v1:schedule-detail", args=[schedule.pk])},
        )

    @extend_schema(request=ScheduleUpdateSerializer, responses={200: ScheduleSerializer})
    def partial_update(self, request: Request, pk: str) -> Response:
        s = ScheduleUpdateSerializer(data=request.data, partial=True)
        s.is_valid(raise_exception=True)
        schedule = schedules.catalog_schedule_update(
            actor=request.principal, schedule=self.get_object(), changes=dict(s.validated_data)
        )
        return Response(ScheduleSerializer(schedule).data)

    def perform_destroy(self, instance: CatalogSchedule) -> None:
        schedules.catalog_schedule_delete(actor=self.request.principal, schedule=instance)


router = SimpleRouter(trailing_slash=False)
router.register("catalogs", CatalogViewSet, basename="catalog")
router.register("catalog-imports", CatalogImportViewSet, basename="catalog-import")
router.register("catalog-runs", CatalogRunViewSet, basename="catalog-run")
router.register("schedules", ScheduleViewSet, basename="schedule")
urlpatterns = router.urls
