from django.urls import path
from rest_framework.routers import SimpleRouter

from .usage import QuotaView, UsageView
from .views import ApiKeyViewSet, AuditEventViewSet, MeView, OrganizationView, TeamViewSet
from .webhooks import WebhookDeliveryViewSet, WebhookEndpointViewSet

router = SimpleRouter(trailing_slash=False)
router.register("teams", TeamViewSet, basename="team")
router.register("api-keys", ApiKeyViewSet, basename="api-key")
router.register("audit-events", AuditEventViewSet, basename="audit-event")
router.register("webhooks", WebhookEndpointViewSet, basename="webhook")
router.register("webhook-deliveries", WebhookDeliveryViewSet, basename="webhook-delivery")

urlpatterns = [
    path("me", MeView.as_view(), name="me"),
    path("organization", OrganizationView.as_view(), name="organization"),
    path("usage", UsageView.as_view(), name="usage"),
    path("quotas", QuotaView.as_view(), name="quotas"),
    *router.urls,
]
