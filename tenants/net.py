"""Outbound HTTP to customer URLs without server-side request forgery.

``validate_public_url`` accepts only ``http``/``https`` URLs whose host resolves exclusively to
public addresses. Refused always: other schemes, credentials in the URL, cloud metadata names,
link-local (169.254.0.0/16 with the 169.254.169.254 metadata address, fe80::/10), multicast,
unspecified and reserved addresses. Refused unless ``settings.EASEL_WEBHOOK_ALLOW_PRIVATE``:
private (10/8, 172.16/12, 192.168/16, fc00::/7, fec0::/10, 100.64/10) and loopback (127/8, ::1).
An IPv6 address that embeds an IPv4 one (IPv4-mapped, 6to4) is judged by the IPv4 address.

``post_pinned`` re-validates at send time and connects to the address it just validated (the
TLS handshake still checks the certificate against the host name), so a DNS answer that changes
between the check and the connection (DNS rebinding) cannot redirect the request. Redirects are
never followed.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from django.conf import settings

ALLOWED_SCHEMES = ("http", "https")
BLOCKED_HOSTNAMES = frozenset({"metadata.google.internal", "metadata", "instance-data"})
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrlError(ValueError):
    """The URL may not be called; the message says why and what would be accepted."""


def _address_problem(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why this address is refused, or None if it is acceptable."""
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv4 address inside an IPv6 one (::ffff:a.b.c.d, 6to4's 2002:aabb:ccdd::) reaches
        # that IPv4 host: judge it by that address.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            address = embedded
        elif address.is_site_local:  # fec0::/10, deprecated but still routed inside networks
            return None if allow_private else "a private-network (site-local) address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_link_local:
        return "a link-local address (this includes cloud metadata services)"
    if address.is_multicast:
        return "a multicast address"
    if address.is_loopback:
        return None if allow_private else "a loopback address"
    if address.is_private or address in ipaddress.ip_network("100.64.0.0/10"):
        return None if allow_private else "a private-network address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


def resolve(host: str, port: int) -> list[IPAddress]:
    """All addresses ``host`` resolves to (an IP literal resolves to itself)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeUrlError(
            f"The host '{host}' could not be resolved ({exc}); check the URL."
        ) from None
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[IPAddress, ...]


def validate_public_url(url: str, *, allow_private: bool | None = None) -> Target:
    """Check ``url`` and resolve its host; raise ``UnsafeUrlError`` if it may not be called."""
    if allow_private is None:
        allow_private = settings.EASEL_WEBHOOK_ALLOW_PRIVATE
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise UnsafeUrlError("The URL contains spaces or control characters; percent-encode them.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrlError(f"'{url}' is not a valid URL ({exc}).") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise UnsafeUrlError(
            f"URL scheme '{scheme or '(none)'}' is not allowed; use an http:// or https:// URL."
        )
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UnsafeUrlError("The URL has no host; use e.g. https://example.com/hooks/easel.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrlError(
            "Credentials in the URL are not allowed; authenticate with the webhook signature."
        )
    if host in BLOCKED_HOSTNAMES:
        raise UnsafeUrlError(f"The host '{host}' is an internal name and may not be called.")
    port = port or (443 if scheme == "https" else 80)
    addresses = resolve(host, port)
    if not addresses:
        raise UnsafeUrlError(f"The host '{host}' has no addresses; check the URL.")
    for address in addresses:
        problem = _address_problem(address, allow_private=allow_private)
        if problem:
            raise UnsafeUrlError(
                f"The host '{host}' resolves to {address}, {problem}; webhooks may only call "
                "public internet addresses."
            )
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme=scheme, host=host, port=port, path=path, addresses=tuple(addresses))


@lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, *, address: IPAddress, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((str(self._address), self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, *, address: IPAddress, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=_tls_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((str(self._address), self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


@dataclass(frozen=True)
class HttpResult:
    status_code: int
    body_excerpt: str
    duration_ms: int


def post_pinned(
    url: str, *, body: bytes, headers: dict[str, str], timeout: float, max_excerpt: int = 1024
) -> HttpResult:
    """POST ``body`` to ``url`` after validating it, connected to the validated address.

    Raises ``UnsafeUrlError`` (refused), ``OSError`` (connection failed, timed out) or
    ``http.client.HTTPException`` (malformed response).
    """
    target = validate_public_url(url)
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(
        target.host, target.port, address=target.addresses[0], timeout=timeout
    )
    started = time.monotonic()
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        excerpt = response.read(max_excerpt).decode("utf-8", "replace")
        return HttpResult(
            status_code=response.status,
            body_excerpt=excerpt,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
    finally:
        connection.close()
