"""Webhook endpoints and their delivery log.

``/webhooks``: list, retrieve (``view``); create (``manage_keys``; the signing secret is in the
response once), delete (deactivates; the delivery log stays), ``POST /webhooks/{id}/test`` (a
``ping``), ``GET /webhooks/{id}/deliveries``. ``/webhook-deliveries/{id}``: retrieve, and
``POST .../redeliver`` (``manage_keys``).
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from .. import selectors, webhooks
from ..models import Organization, WebhookDelivery, WebhookEndpoint
from ..roles import Action
from .base import CreatedCursorPagination, OrgScopedMixin
from .idempotency import HEADER as IDEMPOTENCY_HEADER
from .idempotency import idempotent
from .infra_serializers import (
    WebhookDeliverySerializer,
    WebhookEndpointCreatedSerializer,
    WebhookEndpointCreateSerializer,
    WebhookEndpointSerializer,
)
from .schema import NO_SUCH_TEAM, error_response


class WebhookEndpointViewSet(
    OrgScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    queryset = WebhookEndpoint.objects.none()
    serializer_class = WebhookEndpointSerializer
    pagination_class = CreatedCursorPagination
    required_actions = {
        "create": Action.MANAGE_KEYS,
        "destroy": Action.MANAGE_KEYS,
        "test": Action.MANAGE_KEYS,
        "deliveries": Action.VIEW,
    }

    def scoped_queryset(self, org: Organization) -> QuerySet[WebhookEndpoint]:
        return webhooks.webhook_endpoint_list_for_org(org=org)

    @extend_schema(
        request=WebhookEndpointCreateSerializer,
        responses={201: WebhookEndpointCreatedSerializer, 404: error_response(NO_SUCH_TEAM)},
        parameters=[OpenApiParameter(IDEMPOTENCY_HEADER, str, OpenApiParameter.HEADER)],
    )
    @idempotent
    def create(self, request: Request) -> Response:
        s = WebhookEndpointCreateSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        principal = request.principal
        data = dict(s.validated_data)
        team_id = data.pop("team", None)
        team = selectors.get_optional_team_for_org(org=principal.org, team_id=team_id)
        endpoint, secret = webhooks.webhook_endpoint_create(actor=principal, team=team, **data)
        body = WebhookEndpointSerializer(endpoint).data | {"secret": secret}
        location = reverse("v1:webhook-detail", args=[endpoint.pk])
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": location})

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        webhooks.webhook_endpoint_deactivate(actor=request.principal, endpoint=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={202: WebhookDeliverySerializer})
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str) -> Response:
        delivery = webhooks.webhook_endpoint_ping(
            actor=request.principal, endpoint=self.get_object()
        )
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses=WebhookDeliverySerializer(many=True))
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, pk: str) -> Response:
        rows = webhooks.webhook_delivery_list_for_endpoint(endpoint=self.get_object())
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)


class WebhookDeliveryViewSet(OrgScopedMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = WebhookDelivery.objects.none()
    serializer_class = WebhookDeliverySerializer
    required_actions = {"redeliver": Action.MANAGE_KEYS}

    def scoped_queryset(self, org: Organization) -> QuerySet[WebhookDelivery]:
        return webhooks.webhook_delivery_list_for_org(org=org)

    @extend_schema(request=None, responses={202: WebhookDeliverySerializer})
    @action(detail=True, methods=["post"])
    def redeliver(self, request: Request, pk: str) -> Response:
        delivery = self.get_object()
        delivery = webhooks.webhook_delivery_redeliver(actor=request.principal, delivery=delivery)
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
