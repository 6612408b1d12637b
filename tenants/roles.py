"""Roles and the actions each may take. The README's permission table is generated from here."""

from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    EDITOR = "editor", "Editor"
    REVIEWER = "reviewer", "Reviewer"
    VIEWER = "viewer", "Viewer"


class Action(models.TextChoices):
    VIEW = "view", "See the organization's models, jobs, images and audit log"
    GENERATE = "generate", "Submit and cancel generations, edit prompt templates"
    REVIEW = "review", "Approve, reject and publish images"
    TRAIN = "train", "Start and cancel fine-tuning jobs, run catalogs"
    MANAGE_MODELS = "manage_models", "Create categories, promote and roll back model versions"
    MANAGE_KEYS = "manage_keys", "Create and revoke API keys, manage webhooks"
    MANAGE_ORG = "manage_org", "Manage members, teams and quotas"


ROLE_ACTIONS: dict[str, frozenset[str]] = {
    Role.OWNER: frozenset(Action.values),
    Role.ADMIN: frozenset(Action.values) - {Action.MANAGE_ORG},
    Role.EDITOR: frozenset({Action.VIEW, Action.GENERATE, Action.TRAIN}),
    Role.REVIEWER: frozenset({Action.VIEW, Action.REVIEW}),
    Role.VIEWER: frozenset({Action.VIEW}),
}


def role_allows(role: str, action: str) -> bool:
    return action in ROLE_ACTIONS.get(role, frozenset())
