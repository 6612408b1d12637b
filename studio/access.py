"""Who may see a studio page: a signed-in member of the session's organization whose role allows
the page's action. Every studio view is wrapped in ``studio_view(action)``; it puts the acting
``Principal`` on ``request.principal`` and renders a plain 403 page when the role falls short.

``render_page`` adds what the base template needs: the navigation the role may use and the
organizations the person can switch to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from tenants.context import principal_for_request
from tenants.principal import Principal
from tenants.roles import Action
from tenants.selectors import memberships_for_user

View = Callable[..., HttpResponse]


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    action: str
    section: str  # highlights the item when a page of that section is shown


NAV: tuple[NavItem, ...] = (
    NavItem("Generate", "studio:generate", Action.GENERATE, "generate"),
    NavItem("Jobs", "studio:job_list", Action.VIEW, "jobs"),
    NavItem("Review", "studio:review_queue", Action.REVIEW, "review"),
    NavItem("Gallery", "studio:gallery", Action.VIEW, "gallery"),
    NavItem("Catalogs", "studio:catalog_list", Action.VIEW, "catalogs"),
    NavItem("Training", "studio:training_list", Action.VIEW, "training"),
    NavItem("Models", "studio:category_list", Action.VIEW, "models"),
    NavItem("Quality", "studio:template_list", Action.VIEW, "quality"),
)


def nav_for(principal: Principal) -> list[dict[str, str]]:
    return [
        {"label": item.label, "url": reverse(item.url_name), "section": item.section}
        for item in NAV
        if principal.can(item.action)
    ]


def render_page(
    request: HttpRequest,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    section: str = "",
    status: int = 200,
) -> HttpResponse:
    principal: Principal | None = getattr(request, "principal", None)
    page: dict[str, Any] = {"section": section}
    if principal is not None:
        page.update(
            principal=principal,
            org=principal.org,
            nav=nav_for(principal),
            memberships=list(memberships_for_user(user=principal.user)),
        )
    page.update(context or {})
    return render(request, template, page, status=status)


def forbidden(request: HttpRequest, message: str) -> HttpResponse:
    return render_page(request, "studio/forbidden.html", {"message": message}, status=403)


def refused(request: HttpRequest, action: str) -> HttpResponse:
    """The 403 page for a principal whose role does not allow ``action``."""
    principal = request.principal  # type: ignore[attr-defined]
    return forbidden(
        request,
        f"Your role ({principal.role}) in {principal.org.name} does not allow "
        f"'{action}'. Ask an owner or admin if you need it.",
    )


def studio_view(action: str = Action.VIEW) -> Callable[[View], View]:
    """Require a signed-in member whose role in the session's organization allows ``action``."""

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            principal = principal_for_request(request)
            if principal is None:
                return render(
                    request,
                    "studio/forbidden.html",
                    {
                        "message": "You are not a member of any organization yet. "
                        "Ask an organization owner to add you."
                    },
                    status=403,
                )
            request.principal = principal  # type: ignore[attr-defined]
            if not principal.can(action):
                return refused(request, action)
            return view(request, *args, **kwargs)

        wrapped.studio_action = action  # type: ignore[attr-defined]
        return wrapped

    return decorate
