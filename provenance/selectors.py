"""Reads: an organization's provenance policy (one query, defaults when it chose nothing)."""

from __future__ import annotations

from dataclasses import dataclass

from .models import ProvenanceSettings


@dataclass(frozen=True)
class ProvenancePolicy:
    watermark: bool = False
    private_templates: frozenset[str] = frozenset()

    def template_is_private(self, application: str | None) -> bool:
        return application is not None and application in self.private_templates


def provenance_policy_for_org(*, org_id: int) -> ProvenancePolicy:
    row = ProvenanceSettings.objects.filter(organization_id=org_id).first()
    if row is None:
        return ProvenancePolicy()
    return ProvenancePolicy(
        watermark=row.watermark,
        private_templates=frozenset(str(slug) for slug in row.private_templates or []),
    )
