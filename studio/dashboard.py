"""What the studio home page shows a member: their role's shortcuts and the organization's
latest work. Reads only, all filtered by the principal's organization."""

from __future__ import annotations

from typing import Any

from generation.models import GenerationJob
from tenants.principal import Principal


def summary(*, principal: Principal) -> dict[str, Any]:
    jobs = GenerationJob.objects.filter(organization=principal.org).select_related("created_by")
    return {"recent_jobs": list(jobs.order_by("-created_at")[:8])}
