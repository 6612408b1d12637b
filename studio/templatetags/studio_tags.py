"""Small template helpers for studio pages."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def get_item(mapping: Any, key: str) -> Any:
    """``{{ dict|get_item:name }}``: a mapping's value for a variable key ('' when absent)."""
    if isinstance(mapping, dict):
        return mapping.get(key, "")
    return ""


@register.filter
def short_id(value: Any) -> str:
    """The first 8 characters of a UUID, enough to tell jobs apart on a page."""
    return str(value)[:8]
