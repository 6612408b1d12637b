"""The OpenAPI description (drf-spectacular): the API-key authentication scheme, and the error
responses every operation can give, in the one error format of ``tenants.api.errors``.

``EaselAutoSchema`` (``DEFAULT_SCHEMA_CLASS``) adds to each operation the errors its shape implies:
400 for a body or validated parameters, 401/403 for authentication and scopes, 404 for a path id
(and an invalid ``cursor``), 409 for an ``Idempotency-Key``, 413/415 for a body, 429 for a view
with throttles (rate limits). Errors only a view knows of (a 409 for a state conflict, a 429 quota)
the view declares with ``error_response(...)`` in its ``extend_schema(responses=...)``. Every 429
documents ``Retry-After``.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from .idempotency import HEADER as IDEMPOTENCY_HEADER

# Query parameters whose bad values are not a 400: an invalid cursor is DRF's 404, a bad
# page_size falls back to the default, an unknown Prefer is ignored (RFC 7240).
UNVALIDATED_PARAMETERS = frozenset({"cursor", "page_size", "Prefer"})

DEFAULT_ERROR_DESCRIPTIONS = {
    "400": "The request is invalid; `error.fields` names each bad field.",
    "401": "No valid credentials: send `Authorization: Bearer <API key>`.",
    "403": "The API key's scopes (or your role) do not allow this action.",
    "404": "No such object in your organization (another organization's is the same 404).",
    "409": "The request conflicts with the current state.",
    "413": "The request body is larger than the server accepts.",
    "415": "The request body is not JSON (`Content-Type: application/json`).",
    "429": "A quota or rate limit would be passed; retry after `Retry-After` seconds.",
}
NO_SUCH_TEAM = "The `team` in the body is not a team of your organization."
RETRY_AFTER_HEADER = {
    "schema": {"type": "integer", "minimum": 1},
    "description": "Seconds until the request may succeed.",
}


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable: 'invalid', 'not_found'...")
    message = serializers.CharField(help_text="What was wrong and what to do, for a person.")
    fields = serializers.DictField(
        help_text="For 400s: each bad field and its message(s); otherwise empty."
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


def error_response(description: str) -> OpenApiResponse:
    """An error response a view declares itself: ``responses={409: error_response("...")}``."""
    return OpenApiResponse(ErrorSerializer, description=description)


def _implied_errors(operation: dict[str, Any], *, throttled: bool) -> dict[str, str]:
    """Status code → description of the errors the operation's documented shape (and its view's
    rate limits) imply."""
    locations = {(p["in"], p["name"]) for p in operation.get("parameters", [])}
    has_body = "requestBody" in operation
    validated = any(
        where in ("query", "header") and name not in UNVALIDATED_PARAMETERS
        for where, name in locations
    )
    has_path_id = any(where == "path" for where, _ in locations)
    errors = {}
    if has_body or validated:
        errors["400"] = DEFAULT_ERROR_DESCRIPTIONS["400"]
    if any(requirement for requirement in operation.get("security", [])):
        errors["401"] = DEFAULT_ERROR_DESCRIPTIONS["401"]
        errors["403"] = DEFAULT_ERROR_DESCRIPTIONS["403"]
    if has_path_id or ("query", "cursor") in locations:
        not_found = [DEFAULT_ERROR_DESCRIPTIONS["404"]] if has_path_id else []
        if ("query", "cursor") in locations:
            not_found.append("An invalid `cursor` is a 404 too.")
        errors["404"] = " ".join(not_found)
    if ("header", IDEMPOTENCY_HEADER) in locations:
        errors["409"] = (
            f"This {IDEMPOTENCY_HEADER} was used for a different request, or that request is "
            "still running."
        )
    if has_body:
        errors["413"] = DEFAULT_ERROR_DESCRIPTIONS["413"]
        errors["415"] = DEFAULT_ERROR_DESCRIPTIONS["415"]
    if throttled:
        errors["429"] = DEFAULT_ERROR_DESCRIPTIONS["429"]
    return errors


class EaselAutoSchema(AutoSchema):
    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        responses: dict[str, Any] = operation["responses"]
        throttled = bool(getattr(self.view, "throttle_classes", ()))
        for code, description in _implied_errors(operation, throttled=throttled).items():
            if code not in responses:
                responses[code] = self._get_response_for_code(error_response(description), code)
        for code, response in responses.items():
            if code in DEFAULT_ERROR_DESCRIPTIONS and not response.get("description"):
                response["description"] = DEFAULT_ERROR_DESCRIPTIONS[code]
        if "429" in responses:
            responses["429"].setdefault("headers", {})["Retry-After"] = RETRY_AFTER_HEADER
        operation["responses"] = dict(sorted(responses.items()))
        return operation


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "Team API key: esl_<prefix>_<secret>",
        }
