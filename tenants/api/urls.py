from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import ApiKeyViewSet, AuditEventViewSet, MeView, TeamViewSet

router = SimpleRouter(trailing_slash=False)
router.register("teams", TeamViewSet, basename="team")
router.register("api-keys", ApiKeyViewSet, basename="api-key")
router.register("audit-events", AuditEventViewSet, basename="audit-event")

urlpatterns = [path("me", MeView.as_view(), name="me"), *router.urls]
