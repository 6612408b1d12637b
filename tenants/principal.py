"""Who is acting: a signed-in member or a team's API key, always inside one organization."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .roles import ROLE_ACTIONS

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from .models import ApiKey, Organization, Team


@dataclass(frozen=True)
class Principal:
    org: Organization
    user: AbstractBaseUser | None = None
    api_key: ApiKey | None = None
    role: str | None = None  # a member's role; None for an API key
    team: Team | None = None
    # For an API key: the current role of the person who created it. The key does at most what
    # both its scopes and that role allow, so demoting its creator narrows the key at once.
    key_creator_role: str | None = None

    @property
    def actions(self) -> frozenset[str]:
        if self.api_key is not None:
            ceiling = ROLE_ACTIONS.get(self.key_creator_role or "", frozenset())
            return frozenset(self.api_key.scopes) & ceiling
        return ROLE_ACTIONS.get(self.role or "", frozenset())

    def can(self, action: str) -> bool:
        return action in self.actions

    @property
    def person(self) -> AbstractBaseUser | None:
        """The signed-in user acting, for ``created_by`` fields: None for an API key or the
        system."""
        return self.user if getattr(self.user, "is_authenticated", False) else None

    @property
    def label(self) -> str:
        if self.api_key is not None:
            return f"api-key:{self.api_key.prefix}"
        return getattr(self.user, "username", "system")
