"""Sign in (with lockout), sign out, switch organization, and the home page."""

from __future__ import annotations

from django.contrib.auth import login, logout
from django.contrib.auth.forms import AuthenticationForm
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from tenants.context import SESSION_ORG_KEY
from tenants.selectors import memberships_for_user

from .. import dashboard
from ..access import render_page, studio_view
from ..lockout import client_address, login_failure_record, login_failures_clear, login_lockout


def _next_url(request: HttpRequest) -> str:
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return wanted
    return reverse("studio:home")


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
def login_view(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated and request.method != "POST":
        return redirect(_next_url(request))
    form = AuthenticationForm(request, data=request.POST or None)
    status = 200
    locked_message = ""
    if request.method == "POST":
        username = request.POST.get("username", "")
        ip = client_address(request)
        lockout = login_lockout(username=username, ip=ip)
        if lockout is not None:
            form = AuthenticationForm(request, initial={"username": username})
            locked_message = lockout.message()
            status = 429
        elif form.is_valid():
            login_failures_clear(username=username, ip=ip)
            login(request, form.get_user())
            return redirect(_next_url(request))
        else:
            login_failure_record(username=username, ip=ip)
    return render(
        request,
        "studio/login.html",
        {"form": form, "next": _next_url(request), "locked_message": locked_message},
        status=status,
    )


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("studio:login")


@require_POST
@studio_view()
def switch_org(request: HttpRequest) -> HttpResponse:
    slug = request.POST.get("organization", "")
    membership = memberships_for_user(user=request.user).filter(organization__slug=slug).first()
    if membership is None:
        raise Http404("You are not a member of that organization.")
    request.session[SESSION_ORG_KEY] = membership.organization_id
    # Go home rather than back: the page we came from belongs to the other organization.
    return HttpResponseRedirect(reverse("studio:home"))


@studio_view()
def home(request: HttpRequest) -> HttpResponse:
    return render_page(
        request, "studio/home.html", dashboard.summary(principal=request.principal), section="home"
    )
