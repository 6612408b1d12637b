from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenancy"

    def ready(self) -> None:
        from .api import schema  # noqa: F401 - registers the OpenAPI auth extension
