"""DRF permissions: a request needs a principal inside an organization, and the view's action.

Views declare ``required_actions = {"list": "view", "create": "generate", ...}`` (keyed by
viewset action or HTTP method, lower case); unsafe methods default to ``manage_org`` so that a
view that forgets to declare is closed, not open.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework import permissions
from rest_framework.exceptions import PermissionDenied

if TYPE_CHECKING:  # rest_framework.views imports this module through its settings
    from rest_framework.request import Request
    from rest_framework.views import APIView

from .context import principal_for_request
from .roles import Action


def required_action(request: Request, view: APIView) -> str:
    actions: dict[str, str] = getattr(view, "required_actions", {})
    name = getattr(view, "action", None)
    if name and name in actions:
        return actions[name]
    method = request.method.lower()
    if method in actions:
        return actions[method]
    return Action.VIEW if request.method in permissions.SAFE_METHODS else Action.MANAGE_ORG


class IsOrgMember(permissions.BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        if request.auth is None and not request.user.is_authenticated:
            return False
        principal = principal_for_request(request)
        if principal is None:
            raise PermissionDenied("You are not a member of any organization (or not of that one).")
        action = required_action(request, view)
        if not principal.can(action):
            who = "This API key" if principal.api_key else f"The {principal.role} role"
            raise PermissionDenied(f"{who} does not allow '{action}'.")
        request.principal = principal
        return True
