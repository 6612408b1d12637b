"""factory_boy factories and persona builders shared by the tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import factory
from django.contrib.auth import get_user_model

from tenants import services
from tenants.models import Organization, Team
from tenants.principal import Principal
from tenants.roles import Action, Role

if TYPE_CHECKING:
    from generation.models import GeneratedImage, GenerationJob


def make_image_row(job: GenerationJob, *, index: int = 0) -> GeneratedImage:
    """A ``GeneratedImage`` row for ``job`` (attempt 1, seed 7, 64×64); no object is stored."""
    from generation.models import GeneratedImage

    return GeneratedImage.objects.create(
        organization_id=job.organization_id,
        job=job,
        index=index,
        attempt=1,
        seed=7,
        storage_key=f"orgs/{job.organization_id}/generations/{job.pk}/{index}-1.png",
        sha256="0" * 64,
        width=64,
        height=64,
    )


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests")


@dataclass
class Persona:
    """A member of an organization with a session login and an API key of their team."""

    org: Organization
    team: Team
    user: object
    role: str
    principal: Principal
    api_key: str


def make_org(slug: str) -> tuple[Organization, Principal, Team]:
    owner_user = UserFactory(username=f"{slug}-owner")
    org = services.organization_create(name=slug.title(), slug=slug, owner=owner_user)
    owner = Principal(org=org, user=owner_user, role=Role.OWNER)
    team = services.team_create(actor=owner, name=f"{slug} team", slug="team")
    org.memberships.get(user=owner_user).teams.add(team)
    return org, owner, team


def make_persona(org: Organization, owner: Principal, team: Team, role: str) -> Persona:
    """A member with ``role``; their API key carries every scope the role allows."""
    if role == Role.OWNER:
        user, principal = owner.user, owner
    else:
        user = UserFactory(username=f"{org.slug}-{role}")
        services.membership_set(actor=owner, user=user, role=role, teams=[team])
        principal = Principal(org=org, user=user, role=role, team=team)
    scopes = sorted(principal.actions) or [Action.VIEW]
    _key, raw = services.api_key_create(actor=owner, team=team, name=f"{role} key", scopes=scopes)
    return Persona(org=org, team=team, user=user, role=role, principal=principal, api_key=raw)
