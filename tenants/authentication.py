"""DRF authentication with team API keys: ``Authorization: Bearer esl_<prefix>_<secret>``."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from .models import ApiKey
from .services import ApiKeyInvalid, api_key_authenticate


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[AnonymousUser, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != self.keyword.lower():
            return None
        raw = raw.strip()
        if not raw or " " in raw:
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header: use 'Bearer <key>'."
            )
        try:
            key = api_key_authenticate(raw=raw)
        except ApiKeyInvalid as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None
        return AnonymousUser(), key

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="easel"'
