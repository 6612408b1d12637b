"""``manage.py seed_demo``: the demo organization, people, teams and API key (idempotent).

The demo people share a published password, so the command refuses to run unless the settings
allow it (``EASEL_DEMO_SEED_ALLOWED``: on in local.py and test.py, off everywhere else).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from catalog.demo import seed_catalog
from generation.demo import seed_templates
from models_registry.demo import seed_registry
from tenants.demo import DEMO_PASSWORD, DEMO_PEOPLE, seed_tenancy


class Command(BaseCommand):
    help = "Create (or update) the demo organization used by `make run`."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args: Any, base_url: str, **options: Any) -> None:
        if not settings.EASEL_DEMO_SEED_ALLOWED:
            raise CommandError(
                "Refusing to run: seed_demo creates people with a published password "
                f"({DEMO_PASSWORD!r}) and these settings ({settings.SETTINGS_MODULE}) are not "
                "for a laptop or tests. Create real organizations with "
                "`manage.py create_organization NAME --owner USER` instead."
            )
        demo = seed_tenancy()
        categories = seed_registry(demo.org, demo.owner)
        templates = seed_templates(demo.owner)
        catalog = seed_catalog(demo.owner)
        demo.org.refresh_from_db()
        people = ", ".join(f"{name} ({role})" for name, role in DEMO_PEOPLE)
        self.stdout.write(self.style.SUCCESS(f"Demo organization '{demo.org.slug}' is ready."))
        self.stdout.write(
            f"  Default model: {demo.org.default_model}; categories: "
            f"{', '.join(c.slug for c in categories)}; templates: "
            f"{', '.join(t.application for t in templates)}; catalog: {catalog.slug} "
            f"({catalog.products.count()} products)"
        )
        if demo.org.default_model != "shapes":
            self.stdout.write(
                "  The trained 'shapes' model is building in the background (a few minutes); "
                "the demo switches to it when ready. Progress: GET /api/v1/base-models/shapes"
            )
        self.stdout.write(f"  Studio:   {base_url}/studio/   log in as {people} or owner;")
        self.stdout.write(f"            password for all: {DEMO_PASSWORD}")
        self.stdout.write(f"  API docs: {base_url}/api/docs/")
        self.stdout.write(f"  Health:   curl {base_url}/healthz   (liveness; /readyz for staff)")
        self.stdout.write(
            f"  API:      curl -H 'Authorization: Bearer {demo.api_key}' {base_url}/api/v1/me"
        )
