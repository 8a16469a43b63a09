"""HTTP helpers shared by every JSON endpoint (the widget's, the REST API's, the staff pages'): one error shape
and the client's address."""

import functools
import ipaddress

from django.conf import settings
from django.http import HttpRequest, JsonResponse


def json_error(status: int, code: str, message: str, **extra) -> JsonResponse:
    """`{"error": {"code", "message", ...extra}}` with `status`; `retry_after` also becomes the Retry-After header."""
    response = JsonResponse({"error": {"code": code, "message": message, **extra}}, status=status)
    if "retry_after" in extra:
        response["Retry-After"] = str(extra["retry_after"])
    return response


class BadRequest(Exception):
    """Raised under a JSON view to answer with this error."""

    def __init__(self, status: int, code: str, message: str, **extra):
        super().__init__(message)
        self.response = json_error(status, code, message, **extra)


@functools.lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in proxies if p.strip())


def proxy_trusted(address: str) -> bool:
    """Whether `address` is one of TRUSTED_PROXIES."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _networks(tuple(settings.TRUSTED_PROXIES)))


def client_address(remote_addr: str, forwarded_for: str = "") -> str:
    """The client's address. X-Forwarded-For counts only when the peer is one of TRUSTED_PROXIES: its entries are
    read from the right, skipping further trusted proxies, and the first other address is the client's. Anyone can
    send the header, so from any other peer it is ignored, and a malformed entry ends the walk at the last proxy."""
    address = remote_addr or ""
    if not forwarded_for or not proxy_trusted(address):
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        try:
            hop = str(ipaddress.ip_address(hop.removeprefix("[").split("]")[0]))
        except ValueError:
            return address  # not an address: the last proxy's own word is all we can trust
        address = hop
        if not proxy_trusted(hop):
            return hop
    return address


def client_ip(request: HttpRequest) -> str:
    """The address of the client of an HTTP request (see `client_address`)."""
    return client_address(request.META.get("REMOTE_ADDR", ""), request.headers.get("X-Forwarded-For", ""))


def scope_client_ip(scope: dict) -> str:
    """The address of the client of an ASGI scope (a websocket's), by the same rule as `client_ip`."""
    client = scope.get("client") or ("", 0)
    forwarded = ",".join(
        value.decode("latin-1") for name, value in scope.get("headers", []) if name == b"x-forwarded-for"
    )
    return client_address(client[0] or "", forwarded)
