"""URL map: API v1, OpenAPI schema and docs, the studio, Django admin, health, metrics."""

from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from studio.admin_login import LockoutAdminAuthenticationForm
from tenants.api.not_found import api_not_found, api_server_error
from tenants.health import healthz, readyz

from .metrics import metrics_view

# The admin's sign-in counts failures and locks out like the studio's.
admin.site.login_form = LockoutAdminAuthenticationForm

api_v1 = [
    path("", include("tenants.api.urls")),
    path("", include("generation.api.quality")),
    path("", include("generation.api.templates")),
    path("", include("generation.api.urls")),
    path("", include("generation.api.provenance")),
    path("", include("models_registry.api.urls")),
    path("", include("training.api")),
    path("", include("catalog.api")),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),  # operators only, like /readyz
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[AllowAny]), name="schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="schema", permission_classes=[AllowAny]),
        name="api-docs",
    ),
    # Last of the API routes: any other /api/ path is the API's JSON 404, DEBUG on or off.
    re_path(r"^api/", api_not_found, name="api-not-found"),
    path("admin/", admin.site.urls),
    path("studio/", include("studio.urls")),
    path("", RedirectView.as_view(pattern_name="studio:home", permanent=False), name="root"),
]

# Stored files (MEDIA_ROOT) are never served by path, not even with DEBUG on: images go out only
# through the organization-scoped image endpoints' signed, expiring links (generation/storage.py).

handler500 = api_server_error
