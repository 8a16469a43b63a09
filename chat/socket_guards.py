"""What every websocket handshake must pass before a consumer sees it, and the helpdesk's own origin.

helpdesk/asgi.py puts `WebsocketGuardMiddleware` in front of the websocket router: the Host header must be one of
ALLOWED_HOSTS (as Django requires of every HTTP request), and one client address may hold at most
CHAT_MAX_SOCKETS_PER_ADDRESS sockets at once. A refused handshake is answered with HTTP 403.
"""

import logging
from collections import Counter

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from chat.http import proxy_trusted, scope_client_ip
from chat.origins import origin_normalize

logger = logging.getLogger(__name__)


def scope_header(scope: dict, name: bytes) -> str | None:
    """The first value of a header of an ASGI scope, or None."""
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def host_allowed(host: str | None) -> bool:
    """Whether `host` (a Host header) is one of ALLOWED_HOSTS, by Django's own rule for HTTP requests."""
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:  # as django.http.HttpRequest.get_host does
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    domain, _port = split_domain_port(host or "")
    return bool(domain) and validate_host(domain, allowed)


def scope_secure(scope: dict) -> bool:
    """Whether the client reached the helpdesk over TLS: directly (wss), through a trusted proxy that says so, or
    because the deployment is HTTPS-only (DJANGO_HTTPS: plain HTTP is only a redirect there)."""
    if settings.HTTPS or scope.get("scheme") in ("wss", "https"):
        return True
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        client = scope.get("client") or ("", 0)
        return proxy_trusted(client[0] or "") and scope_header(scope, b"x-forwarded-proto") == "https"
    return False


def scope_own_origin(scope: dict) -> str | None:
    """The origin (`scheme://host[:port]`) of the helpdesk's pages as this client reached them, or None."""
    host = scope_header(scope, b"host")
    if not host_allowed(host):
        return None
    return origin_normalize(f"{'https' if scope_secure(scope) else 'http'}://{host}")


def trusted_origin(origin: str) -> bool:
    """Whether a normalized origin is one of CSRF_TRUSTED_ORIGINS (exactly, or `scheme://*.domain` for its
    subdomains, as Django's CSRF check reads the setting)."""
    scheme, _, host = origin.partition("://")
    for entry in settings.CSRF_TRUSTED_ORIGINS:
        if "://*." in entry:
            entry_scheme, _, suffix = entry.partition("://*")
            if scheme == entry_scheme.lower() and host.endswith(suffix.lower()):
                return True
        elif origin_normalize(entry) == origin:
            return True
    return False


def helpdesk_origin(scope: dict) -> bool:
    """Whether the socket was opened by one of the helpdesk's own pages: its Origin is exactly the origin the
    helpdesk is served from (scheme, host and port) or one of CSRF_TRUSTED_ORIGINS."""
    origin = scope_header(scope, b"origin")
    normalized = origin_normalize(origin) if origin else None
    if normalized is None:
        return False
    return normalized == scope_own_origin(scope) or trusted_origin(normalized)


async def _refuse_handshake(receive, send) -> None:
    """Answer the handshake with HTTP 403 (a close before accept) without starting a consumer."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close"})


class HelpdeskOriginValidator:
    """Lets through only sockets opened by the helpdesk's own pages (see `helpdesk_origin`): the console's.

    Channels' AllowedHostsOriginValidator compares host names only, so a page on http:// or another port of the
    same host passed; this compares the whole origin.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if not helpdesk_origin(scope):
            return await _refuse_handshake(receive, send)
        return await self.app(scope, receive, send)


class WebsocketGuardMiddleware:
    """In front of every websocket route: the Host must be allowed, and one address holds a bounded number of sockets.

    Sockets are counted from the handshake until the consumer ends, per server process (several daphne processes
    each allow CHAT_MAX_SOCKETS_PER_ADDRESS). The address is chat.http.scope_client_ip's: X-Forwarded-For counts
    only from TRUSTED_PROXIES.
    """

    def __init__(self, app):
        self.app = app
        self.open_sockets: Counter = Counter()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        if not host_allowed(scope_header(scope, b"host")):
            return await _refuse_handshake(receive, send)
        address = scope_client_ip(scope)
        if self.open_sockets[address] >= settings.CHAT_MAX_SOCKETS_PER_ADDRESS:
            logger.info("refused a socket: %s already holds %d", address, self.open_sockets[address])
            return await _refuse_handshake(receive, send)
        self.open_sockets[address] += 1
        try:
            return await self.app(scope, receive, send)
        finally:
            self.open_sockets[address] -= 1
            if self.open_sockets[address] <= 0:
                del self.open_sockets[address]
