"""Query-string filters shared by the API's filter sets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, converted to UTC before it reaches a query. PostgreSQL refuses the
    offsets beyond ±15:59 that Python accepts (``?since=2026-01-01T00:00:00+19:19`` was a 500),
    and a time in year 1 or 9999 may not exist in UTC at all: both are now the field's 400."""

    def to_python(self, value: Any) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise ValidationError(self.error_messages["invalid"], code="invalid") from None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class AnyOfFilter(django_filters.MultipleChoiceFilter):
    """``?status=a&status=b``: rows whose column holds any of the values. Without django-filter's
    default DISTINCT, which only a lookup across a to-many relation needs: on the row's own column
    it cannot repeat a row, and ``SELECT DISTINCT`` over every column sorts the whole result before
    the page's LIMIT (a run's queued items at 20,000 items: bench/query_plans.py)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("distinct", False)
        super().__init__(*args, **kwargs)
