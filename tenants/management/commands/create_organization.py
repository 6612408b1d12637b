"""``manage.py create_organization``: an organization, its owner, a first team and API key."""

from __future__ import annotations

import getpass
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.text import slugify

from tenants import services
from tenants.models import Organization
from tenants.principal import Principal
from tenants.roles import Role


class Command(BaseCommand):
    help = "Create an organization with an owner, a first team and an API key (printed once)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name")
        parser.add_argument("--slug")
        parser.add_argument("--owner", required=True, help="Owner's username (created if absent).")
        parser.add_argument("--email", default="")
        parser.add_argument("--password", help="Owner's password when the user is new.")
        parser.add_argument("--team", default="Default")

    def handle(self, *args: Any, **o: Any) -> None:
        slug = o["slug"] or slugify(o["name"])
        if not slug:
            raise CommandError("Give a name with letters or digits, or --slug.")
        if Organization.objects.filter(slug=slug).exists():
            raise CommandError(f"An organization with slug '{slug}' already exists.")
        user_model = get_user_model()
        with transaction.atomic():
            user = user_model.objects.filter(username=o["owner"]).first()
            if user is None:
                password = o["password"] or getpass.getpass(f"Password for {o['owner']}: ")
                user = services.user_create(
                    username=o["owner"], password=password, email=o["email"]
                )
            org = services.organization_create(name=o["name"], slug=slug, owner=user)
            owner = Principal(org=org, user=user, role=Role.OWNER)
            try:
                team = services.team_create(actor=owner, name=o["team"], slug=slugify(o["team"]))
            except ValidationError as exc:
                raise CommandError(str(exc)) from exc
            org.memberships.get(user=user).teams.add(team)
            _key, secret = services.api_key_create(actor=owner, team=team, name="first key")
        self.stdout.write(self.style.SUCCESS(f"Created organization '{slug}' owned by {user}."))
        self.stdout.write(f"API key (shown once, store it now): {secret}")
