"""Usage and quotas: ``GET /usage`` (anyone in the organization), ``GET /quotas`` and
``PUT /quotas`` (``manage_org``: set the org-wide limits or one team's)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import quotas, selectors
from ..roles import Action
from .infra_serializers import QuotaSerializer, QuotaSetSerializer, UsageSerializer
from .schema import NO_SUCH_TEAM, error_response


class UsageView(APIView):
    """Images today (UTC) and GPU-seconds this month, with limits and reset times, for the
    organization and each team."""

    @extend_schema(responses=UsageSerializer)
    def get(self, request: Request) -> Response:
        summary = quotas.usage_summary(org=request.principal.org)
        return Response(UsageSerializer(summary).data)


class QuotaView(APIView):
    required_actions = {"get": Action.VIEW, "put": Action.MANAGE_ORG}

    @extend_schema(responses=QuotaSerializer(many=True))
    def get(self, request: Request) -> Response:
        rows = quotas.quota_list_for_org(org=request.principal.org)
        return Response(QuotaSerializer(rows, many=True).data)

    @extend_schema(
        request=QuotaSetSerializer,
        responses={200: QuotaSerializer, 404: error_response(NO_SUCH_TEAM)},
    )
    def put(self, request: Request) -> Response:
        s = QuotaSetSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        principal = request.principal
        data = dict(s.validated_data)
        team_id = data.pop("team", None)
        team = selectors.get_optional_team_for_org(org=principal.org, team_id=team_id)
        quota = quotas.quota_set(actor=principal, org=principal.org, team=team, **data)
        return Response(QuotaSerializer(quota).data)
