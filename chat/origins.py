"""Which web origins may use a site's widget: its allowed list, plus the helpdesk's own pages."""

from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_normalize(value: str) -> str | None:
    """`scheme://host[:port]` in canonical form (lower case, default port dropped), or None if not an origin."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    if parts.query or parts.fragment or parts.username or parts.password:
        return None
    host = parts.hostname.lower()
    if ":" in host:  # IPv6
        host = f"[{host}]"
    if port is not None and port != DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}:{port}"
    return f"{parts.scheme}://{host}"


def origin_allowed(*, origin: str | None, allowed: set[str], own_origin: str | None) -> bool:
    """Whether a request with this Origin header may use a site whose allowed origins are `allowed`.

    `own_origin` is the helpdesk's own origin as the request reached it (`scheme://host[:port]`): a page served by
    the helpdesk itself is always allowed, under that exact scheme and port only.
    A request without an Origin header is refused (browsers send one on cross-origin fetches and websockets).
    """
    normalized = origin_normalize(origin) if origin else None
    if normalized is None:
        return False
    if normalized in allowed:
        return True
    return own_origin is not None and normalized == origin_normalize(own_origin)
