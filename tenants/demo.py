"""Demo tenancy for ``make run``: an organization, three people, two teams, one API key.

Idempotent: running it again changes nothing. The demo key's secret is kept in
``var/demo-api-key.txt`` (git-ignored) so ``make run`` can print a ready ``curl`` every time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from . import services
from .models import ApiKey, Membership, Organization, Team
from .principal import Principal
from .roles import Action, Role

DEMO_PASSWORD = "easel-demo"  # noqa: S105 - documented demo credentials, local only
DEMO_PEOPLE = (("admin", Role.ADMIN), ("marketer", Role.EDITOR), ("reviewer", Role.REVIEWER))
DEMO_TEAMS = (("Marketing", "marketing"), ("Catalog", "catalog"))


@dataclass
class DemoTenancy:
    org: Organization
    api_key: str
    owner: Principal


def _key_file() -> Path:
    return Path(settings.VAR_DIR) / "demo-api-key.txt"


@transaction.atomic
def seed_tenancy() -> DemoTenancy:
    owner_user = services.user_create(username="owner", password=DEMO_PASSWORD)
    org = Organization.objects.filter(slug="demo").first()
    if org is None:
        org = services.organization_create(name="Demo Grocer", slug="demo", owner=owner_user)
    owner = Principal(org=org, user=owner_user, role=Role.OWNER)
    teams = []
    for name, slug in DEMO_TEAMS:
        team = Team.objects.filter(organization=org, slug=slug).first()
        teams.append(team or services.team_create(actor=owner, name=name, slug=slug))
    for username, role in DEMO_PEOPLE:
        user = services.user_create(username=username, password=DEMO_PASSWORD)
        if not Membership.objects.filter(organization=org, user=user).exists():
            services.membership_set(actor=owner, user=user, role=role, teams=[teams[0]])
    owner_membership = Membership.objects.get(organization=org, user=owner_user)
    owner_membership.teams.add(*teams)
    return DemoTenancy(org=org, api_key=_demo_key(owner=owner, team=teams[0]), owner=owner)


def _demo_key(*, owner: Principal, team: Team) -> str:
    path = _key_file()
    if path.exists():
        raw = path.read_text().strip()
        parts = raw.split("_", 2)
        prefix = parts[1] if len(parts) == 3 else ""
        key = ApiKey.objects.filter(organization=owner.org, prefix=prefix).first()
        if key is not None and key.is_active():
            return raw
    for stale in ApiKey.objects.filter(organization=owner.org, name="demo", revoked_at=None):
        services.api_key_revoke(actor=owner, api_key=stale)
    _key, raw = services.api_key_create(
        actor=owner,
        team=team,
        name="demo",
        scopes=[Action.VIEW, Action.GENERATE, Action.TRAIN, Action.REVIEW],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(raw + "\n")
    path.chmod(0o600)
    return raw
