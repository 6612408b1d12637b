"""Webhook URLs aimed inside the platform's network (server-side request forgery): loopback,
private, link-local and cloud-metadata addresses however they are spelled (decimal, hex, octal and
short IPv4 forms; IPv4-mapped, IPv4-compatible, 6to4, NAT64 and site-local IPv6), names that
resolve to them, and schemes other than http(s). Each is refused with the reason, by the API as a
400 naming ``url`` with nothing created; a receiver's redirect is never followed.
(tests/infra/test_net.py covers the plain spellings, the private switch and DNS rebinding.)
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tenants.models import WebhookEndpoint
from tenants.net import UnsafeUrlError, validate_public_url
from tenants.webhooks import webhook_delivery_attempt, webhook_endpoint_create, webhook_event_emit


@pytest.fixture(autouse=True)
def _private_off(settings):  # type: ignore[no-untyped-def]
    settings.EASEL_WEBHOOK_ALLOW_PRIVATE = False


ENCODED = [
    ("http://2130706433/hook", "resolves to 127.0.0.1, a loopback address"),  # decimal
    ("http://0x7f000001/hook", "resolves to 127.0.0.1, a loopback address"),  # hex
    ("http://0177.0.0.1/hook", "resolves to 127.0.0.1, a loopback address"),  # octal
    ("http://017700000001/", "resolves to 127.0.0.1, a loopback address"),
    ("http://127.1/hook", "resolves to 127.0.0.1, a loopback address"),  # short form
    ("http://0x7f.1/", "resolves to 127.0.0.1, a loopback address"),
    ("http://0/", "resolves to 0.0.0.0, an unspecified address"),
    ("http://2852039166/latest/meta-data/", "resolves to 169.254.169.254, a link-local"),
    ("http://0xA9FEA9FE/latest/meta-data/", "resolves to 169.254.169.254, a link-local"),
    ("http://0251.0376.0251.0376/", "resolves to 169.254.169.254, a link-local"),
    ("http://[::ffff:7f00:1]/", "a loopback address"),  # IPv4-mapped, hex
    ("http://[::ffff:a9fe:a9fe]/", "a link-local address"),
    ("http://[::127.0.0.1]/", "a reserved address"),  # IPv4-compatible (deprecated)
    ("http://[0:0:0:0:0:0:0:1]/", "resolves to ::1, a loopback address"),
    ("http://[::]/", "an unspecified address"),
    ("http://[fc00::1]/", "a private-network address"),  # ULA
    ("http://[fd00:ec2::254]/", "a private-network address"),  # AWS's IPv6 metadata address
    ("http://[fec0::1]/", "a private-network (site-local) address"),
    ("http://[2002:7f00:1::]/", "a loopback address"),  # 6to4 around 127.0.0.1
    ("http://[2002:a9fe:a9fe::1]/", "a link-local address"),  # 6to4 around the metadata address
    ("http://[2002:c0a8:101::]/", "a private-network address"),  # 6to4 around 192.168.1.1
    ("http://[64:ff9b::a9fe:a9fe]/", "a reserved address"),  # NAT64 around the metadata address
    ("http://[2001::1]/", "a private-network address"),  # Teredo
    ("http://LOCALHOST./", "resolves to 127.0.0.1, a loopback address"),
    ("http://METADATA.GOOGLE.INTERNAL./", "is an internal name"),
    ("http://instance-data./latest/", "is an internal name"),
    ("https://198.18.0.1/", "a private-network address"),  # benchmarking range
    ("http://192.0.0.170/", "a private-network address"),  # NAT64 discovery
    ("http://255.255.255.255/", "a private-network address"),  # broadcast
    ("javascript:alert(1)", "scheme 'javascript'"),
    ("data:text/plain,hi", "scheme 'data'"),
    ("ws://example.com/socket", "scheme 'ws'"),
    ("dict://127.0.0.1:6379/info", "scheme 'dict'"),
    ("ldap://127.0.0.1/", "scheme 'ldap'"),
    ("http://127.0.0.1:80@evil.example/", "Credentials"),
    ("http://evil.example\\@127.0.0.1/", "Credentials"),
]


@pytest.mark.parametrize(("url", "reason"), ENCODED, ids=[u for u, _r in ENCODED])
def test_internal_addresses_in_every_spelling_are_refused(url, reason):
    with pytest.raises(UnsafeUrlError, match=re.escape(reason)):
        validate_public_url(url)


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Host name → every address it resolves to (the test machine has no DNS)."""
    table: dict[str, list[str]] = {}

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in table[host]
        ]

    monkeypatch.setattr("tenants.net.socket.getaddrinfo", getaddrinfo)
    return table


@pytest.mark.parametrize(
    ("addresses", "reason"),
    [
        (["fd12:3456::1"], "fd12:3456::1, a private-network address"),
        (["::ffff:127.0.0.1"], "a loopback address"),
        (["2002:a9fe:a9fe::"], "a link-local address"),
        # One public and one internal answer: an attacker's resolver picks which is used.
        (["93.184.216.34", "10.0.0.7"], "10.0.0.7, a private-network address"),
        (["2606:2800:220:1::1", "fe80::1"], "fe80::1, a link-local address"),
    ],
)
def test_a_name_resolving_to_any_internal_address_is_refused(dns, addresses, reason):
    dns["hooks.attacker.example"] = addresses
    with pytest.raises(UnsafeUrlError, match=re.escape(reason)):
        validate_public_url("https://hooks.attacker.example/easel")


def test_a_name_resolving_only_to_public_addresses_is_accepted(dns):
    dns["hooks.example.com"] = ["93.184.216.34", "2606:2800:220:1::1", "2002:5db8:d822::1"]
    assert len(validate_public_url("https://hooks.example.com/").addresses) == 3


API_REFUSED = [
    "http://2852039166/latest/meta-data/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[2002:a9fe:a9fe::]/",
    "http://0x7f000001:6379/",
    "http://[fd00::1]/",
    "gopher://127.0.0.1:6379/_FLUSHALL",
]


@pytest.mark.django_db
@pytest.mark.parametrize("url", API_REFUSED)
def test_the_api_refuses_them_naming_url_and_creates_nothing(owner, client_for, url):
    response = client_for(owner).post(
        "/api/v1/webhooks", {"url": url, "events": ["job.failed"]}, format="json"
    )
    assert response.status_code == 400, response.content
    assert "url" in response.json()["error"]["fields"]
    assert not WebhookEndpoint.objects.exists()


@pytest.fixture
def redirecting_receiver(settings) -> Iterator[tuple[str, list[str]]]:  # type: ignore[no-untyped-def]
    """A receiver answering 307 to a second local server; yields its URL and the paths the second
    server was asked for."""
    settings.EASEL_WEBHOOK_ALLOW_PRIVATE = True  # both listen on 127.0.0.1
    asked: list[str] = []

    class Target(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            asked.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    target = ThreadingHTTPServer(("127.0.0.1", 0), Target)

    class Redirect(Target):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:{target.server_address[1]}/meta")
            self.end_headers()

    source = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    servers = [target, source]
    for server in servers:
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{source.server_address[1]}/hook", asked
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.mark.django_db
def test_a_receivers_redirect_is_recorded_as_a_failed_attempt_and_never_followed(
    owner, redirecting_receiver
):
    url, asked = redirecting_receiver
    webhook_endpoint_create(actor=owner.principal, url=url, events=["job.failed"])
    [delivery] = webhook_event_emit(org=owner.org, team=None, event="job.failed", payload={})
    attempted = webhook_delivery_attempt(delivery_id=delivery.pk)
    assert asked == []
    assert attempted.status == "pending" and "307" in attempted.last_error
