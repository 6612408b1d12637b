"""Tenant-scoped reads of prompt templates: the latest version per application, one version,
a version history. A template of another organization is the same 404 as a missing one."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, QuerySet
from django.http import Http404

from tenants.models import Organization
from tenants.selectors import get_for_org

from .models import PromptTemplate


def prompt_template_latest_list(*, org: Organization) -> QuerySet[PromptTemplate]:
    """The latest version of each application's template, by application."""
    newer = PromptTemplate.objects.filter(
        organization=org, application=OuterRef("application"), version__gt=OuterRef("version")
    )
    return (
        PromptTemplate.objects.filter(organization=org)
        .exclude(Exists(newer))
        .select_related("created_by")
        .order_by("application")
    )


def prompt_template_version_list(
    *, org: Organization, application: str
) -> QuerySet[PromptTemplate]:
    """Every version of ``application``'s template, newest first; 404 when there is none."""
    versions = PromptTemplate.objects.filter(organization=org, application=application)
    if not versions.exists():
        raise Http404("No prompt template matches the given query.")
    return versions.select_related("created_by").order_by("-version")


def get_prompt_template_for_org(
    *, org: Organization, application: str, version: int | None = None
) -> PromptTemplate:
    """``application``'s template at ``version``, or its latest version when ``version`` is None."""
    queryset = PromptTemplate.objects.select_related("created_by")
    if version is not None:
        return get_for_org(queryset, org=org, application=application, version=version)
    latest = queryset.filter(organization=org, application=application).order_by("-version").first()
    if latest is None:
        raise Http404("No prompt template matches the given query.")
    return latest


def get_prompt_template_by_id_for_org(*, org: Organization, template_id: int) -> PromptTemplate:
    """One exact template version by primary key (what a job recorded)."""
    return get_for_org(PromptTemplate.objects.all(), org=org, pk=template_id)
