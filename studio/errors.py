"""Turn service errors into the one sentence a studio page shows."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError


def field_messages(exc: ValidationError) -> dict[str, str]:
    """``{"field": "message"}`` from a service's ``ValidationError`` (``__all__`` when unkeyed)."""
    if hasattr(exc, "error_dict"):
        return {field: " ".join(errors) for field, errors in exc.message_dict.items()}
    return {"__all__": " ".join(exc.messages)}


def first_message(exc: ValidationError) -> str:
    return next(iter(field_messages(exc).values()), "The request was refused.")


def serializer_messages(errors: Any) -> dict[str, str]:
    """``{"field": "message"}`` from DRF ``serializer.errors`` (nested lists/dicts joined)."""

    def text(value: Any) -> str:
        if isinstance(value, dict):
            return "; ".join(f"{k}: {text(v)}" for k, v in value.items())
        if isinstance(value, list | tuple):
            return " ".join(text(v) for v in value)
        return str(value)

    return {field: text(value) for field, value in dict(errors).items()}
