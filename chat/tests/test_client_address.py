"""The client's address behind (and not behind) reverse proxies: X-Forwarded-For only from TRUSTED_PROXIES."""

import pytest

from chat.http import client_address, scope_client_ip


@pytest.mark.parametrize(
    ("proxies", "remote", "forwarded", "expected"),
    [
        # No proxy configured: the header is anyone's to write, so it is ignored (compose used to trust it).
        ([], "203.0.113.9", "127.0.0.1", "203.0.113.9"),
        ([], "127.0.0.1", "198.51.100.1", "127.0.0.1"),
        # A peer that is not a configured proxy cannot speak for someone else either.
        (["10.0.0.0/8"], "203.0.113.9", "127.0.0.1", "203.0.113.9"),
        # From the proxy: the last entry is the address the proxy saw.
        (["10.0.0.0/8"], "10.0.0.5", "198.51.100.1", "198.51.100.1"),
        # Entries the customer prepended are not believed: only the proxy's own (the rightmost) is.
        (["10.0.0.0/8"], "10.0.0.5", "127.0.0.1, 198.51.100.1", "198.51.100.1"),
        # Two trusted proxies in a row (CDN then load balancer): walk past both.
        (["10.0.0.0/8", "192.0.2.0/24"], "10.0.0.5", "198.51.100.1, 192.0.2.7", "198.51.100.1"),
        # Garbage in the header ends the walk at the last trusted hop.
        (["10.0.0.0/8"], "10.0.0.5", "not-an-ip", "10.0.0.5"),
        (["10.0.0.0/8", "192.0.2.0/24"], "10.0.0.5", "junk, 192.0.2.7", "192.0.2.7"),
        (["::1"], "::1", "[2001:db8::1]", "2001:db8::1"),
    ],
)
def test_forwarded_for_is_believed_only_from_trusted_proxies(settings, proxies, remote, forwarded, expected):
    settings.TRUSTED_PROXIES = proxies
    assert client_address(remote, forwarded) == expected


def test_a_socket_scope_follows_the_same_rule(settings):
    scope = {"client": ("10.1.2.3", 5555), "headers": [(b"x-forwarded-for", b"127.0.0.1")]}
    settings.TRUSTED_PROXIES = []
    assert scope_client_ip(scope) == "10.1.2.3"
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert scope_client_ip(scope) == "127.0.0.1"
    assert scope_client_ip({"client": None, "headers": []}) == ""


def test_metrics_loopback_trust_cannot_be_forged_with_a_header(client, settings):
    settings.METRICS_TOKEN = ""
    forged = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="127.0.0.1")
    assert forged.status_code == 403
    # Behind a proxy on this host, the proxy's client decides, not the proxy's own loopback address.
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200


def test_forwarded_headers_from_anyone_but_a_trusted_proxy_are_dropped(rf, settings):
    from helpdesk.middleware import UntrustedForwardedHeadersMiddleware

    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    seen = []
    middleware = UntrustedForwardedHeadersMiddleware(lambda request: seen.append(request) or "response")
    headers = {"HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_FOR": "127.0.0.1"}
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert middleware(rf.get("/", REMOTE_ADDR="203.0.113.9", **headers)) == "response"
    assert middleware(rf.get("/", REMOTE_ADDR="10.0.0.5", **headers)) == "response"
    forged, proxied = seen
    assert not forged.is_secure() and "HTTP_X_FORWARDED_FOR" not in forged.META
    assert proxied.is_secure() and proxied.META["HTTP_X_FORWARDED_FOR"] == "127.0.0.1"
