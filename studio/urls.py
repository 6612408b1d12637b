"""Studio URL map (mounted at ``/studio/``)."""

from django.urls import path

from .views import account

app_name = "studio"

urlpatterns = [
    path("", account.home, name="home"),
    path("login/", account.login_view, name="login"),
    path("logout/", account.logout_view, name="logout"),
    path("organization/", account.switch_org, name="switch_org"),
]
