"""SSRF protection for outbound webhook calls: schemes, internal names and addresses, the
private-network switch, and re-checking the address at delivery time (DNS rebinding)."""

from __future__ import annotations

import re

import pytest

from tenants.net import UnsafeUrlError, post_pinned, validate_public_url
from tenants.webhooks import webhook_delivery_attempt, webhook_endpoint_create, webhook_event_emit


@pytest.fixture(autouse=True)
def _private_off(settings):  # type: ignore[no-untyped-def]
    settings.EASEL_WEBHOOK_ALLOW_PRIVATE = False


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://10.0.0.1/hook", "private-network"),
        ("http://192.168.1.20/hook", "private-network"),
        ("http://100.64.0.1/hook", "private-network"),
        ("http://[fd00::1]/hook", "private-network"),
        ("http://[::1]/hook", "loopback"),
        ("http://127.0.0.1:8000/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://metadata.google.internal/computeMetadata/v1/", "internal name"),
        ("file:///etc/passwd", "scheme 'file'"),
        ("gopher://example.com:70/_GET", "scheme 'gopher'"),
        ("ftp://example.com/x", "scheme 'ftp'"),
        ("//example.com/x", "scheme '(none)'"),
        ("http://user:pw@example.com/x", "Credentials"),
        ("http:///nohost", "no host"),
        ("http://example.com/a b", "spaces or control characters"),
        ("http://example.com/\r\nX-Injected: 1", "spaces or control characters"),
    ],
)
def test_unsafe_urls_are_refused_with_the_reason(url, reason):
    with pytest.raises(UnsafeUrlError, match=re.escape(reason)):
        validate_public_url(url)


def test_a_public_host_is_accepted_with_its_addresses(fake_dns):
    fake_dns["hooks.example.com"] = "93.184.215.14"
    target = validate_public_url("https://hooks.example.com/easel?x=1")
    assert (target.scheme, target.host, target.port, target.path) == (
        "https",
        "hooks.example.com",
        443,
        "/easel?x=1",
    )
    assert [str(a) for a in target.addresses] == ["93.184.215.14"]


def test_a_name_resolving_to_a_private_address_is_refused(fake_dns):
    fake_dns["innocent.example.com"] = "10.1.2.3"
    with pytest.raises(UnsafeUrlError, match="resolves to 10.1.2.3, a private-network address"):
        validate_public_url("https://innocent.example.com/")


def test_an_unresolvable_host_is_refused(fake_dns):
    with pytest.raises(UnsafeUrlError, match="could not be resolved"):
        validate_public_url("https://does-not-exist.invalid/")


def test_the_private_switch_allows_loopback_and_lan_but_never_metadata(settings):
    settings.EASEL_WEBHOOK_ALLOW_PRIVATE = True
    validate_public_url("http://127.0.0.1:9000/hook")
    validate_public_url("http://10.0.0.1/hook")
    for url in ("http://169.254.169.254/", "http://metadata.google.internal/", "file:///x"):
        with pytest.raises(UnsafeUrlError):
            validate_public_url(url)


def test_post_pinned_refuses_before_connecting(monkeypatch):
    def no_connection(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("connected to a refused address")

    monkeypatch.setattr("tenants.net.socket.create_connection", no_connection)
    with pytest.raises(UnsafeUrlError):
        post_pinned("http://169.254.169.254/", body=b"{}", headers={}, timeout=1)


@pytest.mark.django_db
def test_a_host_that_rebinds_to_loopback_after_creation_is_refused_at_delivery(
    owner, fake_dns, monkeypatch
):
    fake_dns["rebind.example.com"] = "93.184.215.14"
    endpoint, _ = webhook_endpoint_create(
        actor=owner.principal, url="http://rebind.example.com/hook", events=["job.failed"]
    )
    [delivery] = webhook_event_emit(org=owner.org, team=None, event="job.failed", payload={})
    fake_dns["rebind.example.com"] = "127.0.0.1"
    connected: list[object] = []
    monkeypatch.setattr("tenants.net.socket.create_connection", lambda *a, **k: connected.append(a))
    attempted = webhook_delivery_attempt(delivery_id=delivery.pk)
    assert connected == []
    assert attempted.status == "pending"  # retried later: DNS may be fixed by then
    assert attempted.last_error.startswith("Refused: The host 'rebind.example.com' resolves to")
    assert "loopback" in attempted.last_error
    assert endpoint.pk == attempted.endpoint_id


def test_delivery_connects_to_the_address_it_validated(fake_dns, monkeypatch):
    fake_dns["hooks.example.com"] = "93.184.215.14"
    seen: list[tuple] = []

    def fake_connect(address, timeout=None):  # type: ignore[no-untyped-def]
        seen.append(address)
        raise ConnectionRefusedError("stop here")

    monkeypatch.setattr("tenants.net.socket.create_connection", fake_connect)
    with pytest.raises(OSError):
        post_pinned("http://hooks.example.com:8080/x", body=b"{}", headers={}, timeout=1)
    assert seen == [("93.184.215.14", 8080)]
