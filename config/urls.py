"""URL map: API v1, OpenAPI schema and docs, the studio, Django admin, health."""

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.defaults import page_not_found
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from tenants.api.errors import json_error
from tenants.health import healthz

api_v1 = [
    path("", include("tenants.api.urls")),
    path("", include("generation.api.templates")),
    path("", include("generation.api.urls")),
    path("", include("models_registry.api.urls")),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[AllowAny]), name="schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="schema", permission_classes=[AllowAny]),
        name="api-docs",
    ),
    path("admin/", admin.site.urls),
    path("studio/", include("studio.urls")),
    path("", RedirectView.as_view(pattern_name="studio:home", permanent=False), name="root"),
]

if settings.DEBUG and settings.EASEL_STORAGE == "local":
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith("/api/"):
        return json_error(404, "not_found", "Not found.")
    return page_not_found(request, exception)
