"""Tenancy endpoints: who am I, the organization's settings, teams, API keys, audit events."""

from __future__ import annotations

import django_filters
from django.db import transaction
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors, services
from ..models import ApiKey, AuditEvent, Organization, Team
from ..roles import Action
from .base import CreatedCursorPagination, OrgScopedMixin
from .filters import UtcIsoDateTimeFilter
from .schema import NO_SUCH_TEAM, error_response
from .serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    AuditEventSerializer,
    MeSerializer,
    OrganizationSerializer,
    OrganizationSettingsSerializer,
    TeamCreateSerializer,
    TeamSerializer,
)


class MeView(APIView):
    @extend_schema(responses=MeSerializer)
    def get(self, request: Request) -> Response:
        p = request.principal
        data = {
            "organization": {"id": p.org.pk, "slug": p.org.slug, "name": p.org.name},
            "team": {"id": p.team.pk, "slug": p.team.slug, "name": p.team.name} if p.team else None,
            "user": getattr(p.user, "username", None),
            "api_key": p.api_key.prefix if p.api_key else None,
            "role": p.role,
            "actions": sorted(p.actions),
        }
        return Response(MeSerializer(data).data)


class OrganizationView(APIView):
    """The requesting principal's organization and its settings (owners change them)."""

    required_actions = {"get": Action.VIEW, "patch": Action.MANAGE_ORG}
    http_method_names = ["get", "patch", "options"]

    @extend_schema(responses=OrganizationSerializer)
    def get(self, request: Request) -> Response:
        return Response(OrganizationSerializer(request.principal.org).data)

    @extend_schema(request=OrganizationSettingsSerializer, responses=OrganizationSerializer)
    def patch(self, request: Request) -> Response:
        s = OrganizationSettingsSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        org = services.organization_api_key_max_lifetime_set(
            actor=request.principal, **s.validated_data
        )
        return Response(OrganizationSerializer(org).data)


class TeamViewSet(
    OrgScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    queryset = Team.objects.none()
    serializer_class = TeamSerializer
    required_actions = {"create": Action.MANAGE_ORG}
    pagination_class = None

    def scoped_queryset(self, org: Organization) -> QuerySet[Team]:
        return selectors.team_list_for_org(org=org)

    @extend_schema(request=TeamCreateSerializer, responses={201: TeamSerializer})
    def create(self, request: Request) -> Response:
        s = TeamCreateSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        team = services.team_create(actor=request.principal, **s.validated_data)
        return Response(TeamSerializer(team).data, status=status.HTTP_201_CREATED)


class ApiKeyViewSet(
    OrgScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    queryset = ApiKey.objects.none()
    serializer_class = ApiKeySerializer
    required_actions = {"create": Action.MANAGE_KEYS, "revoke": Action.MANAGE_KEYS}
    pagination_class = CreatedCursorPagination

    def scoped_queryset(self, org: Organization) -> QuerySet[ApiKey]:
        return selectors.api_key_list_for_org(org=org)

    @extend_schema(
        request=ApiKeyCreateSerializer,
        responses={201: ApiKeyCreatedSerializer, 404: error_response(NO_SUCH_TEAM)},
    )
    def create(self, request: Request) -> Response:
        s = ApiKeyCreateSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        principal = request.principal
        data = dict(s.validated_data)
        team_id = data.pop("team", None)
        if team_id is not None:
            team = selectors.get_team_for_org(org=principal.org, team_id=team_id)
        elif principal.team is not None:
            team = principal.team
        else:
            return Response(
                {
                    "error": {
                        "code": "invalid",
                        "message": "team: Required (you have no team).",
                        "fields": {"team": "Required."},
                    }
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        key, secret = services.api_key_create(actor=principal, team=team, **data)
        body = ApiKeySerializer(key).data | {"secret": secret}
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=ApiKeySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str) -> Response:
        with transaction.atomic():
            key = services.api_key_revoke(actor=request.principal, api_key=self.get_object())
        return Response(ApiKeySerializer(key).data)


class AuditEventFilter(django_filters.FilterSet):
    since = UtcIsoDateTimeFilter(field_name="at", lookup_expr="gte")
    until = UtcIsoDateTimeFilter(field_name="at", lookup_expr="lt")
    verb = django_filters.CharFilter()
    object_type = django_filters.CharFilter()
    object_id = django_filters.CharFilter()

    class Meta:
        model = AuditEvent
        fields = ["verb", "object_type", "object_id", "since", "until"]


class AuditCursorPagination(CreatedCursorPagination):
    ordering = ("-at", "-id")


class AuditEventViewSet(OrgScopedMixin, viewsets.ReadOnlyModelViewSet):
    queryset = AuditEvent.objects.none()
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    pagination_class = AuditCursorPagination

    def scoped_queryset(self, org: Organization) -> QuerySet[AuditEvent]:
        return selectors.audit_event_list_for_org(org=org)
