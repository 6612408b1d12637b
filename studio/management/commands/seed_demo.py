"""``manage.py seed_demo``: the demo organization, people, teams and API key (idempotent)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from tenants.demo import DEMO_PASSWORD, DEMO_PEOPLE, seed_tenancy


class Command(BaseCommand):
    help = "Create (or update) the demo organization used by `make run`."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args: Any, base_url: str, **options: Any) -> None:
        demo = seed_tenancy()
        people = ", ".join(f"{name} ({role})" for name, role in DEMO_PEOPLE)
        self.stdout.write(self.style.SUCCESS(f"Demo organization '{demo.org.slug}' is ready."))
        self.stdout.write(f"  Studio:   {base_url}/studio/   log in as {people} or owner;")
        self.stdout.write(f"            password for all: {DEMO_PASSWORD}")
        self.stdout.write(f"  API docs: {base_url}/api/docs/")
        self.stdout.write(f"  Health:   curl {base_url}/healthz")
        self.stdout.write(
            f"  API:      curl -H 'Authorization: Bearer {demo.api_key}' {base_url}/api/v1/me"
        )
