"""Where webhooks may post: public internet addresses only, unless WEBHOOK_ALLOW_PRIVATE_NETWORKS is on.

A webhook URL is typed by staff, and the server posts to it from inside the network: pointed at loopback, a
link-local metadata service (169.254.169.254) or a private address, it would reach what the internet cannot (SSRF).
So the destination is checked twice. When the webhook is saved, an address or a name resolving to a non-public
address is refused with a reason. When a delivery is sent, the name is resolved again, every address it resolves to
is checked (a name can resolve to a public and a private one), and the connection goes to the address that was
checked, so a DNS answer that changes between the check and the connection (rebinding) cannot move it.
"""

import ipaddress
import socket

from django.conf import settings


class DestinationRefused(ValueError):
    """The URL's host is not a public address (or cannot be resolved, at delivery)."""


def address_public(address: str) -> bool:
    """Whether `address` is routable on the public internet: not loopback, private, link-local, shared (CGNAT),
    multicast, reserved or unspecified. An IPv4 address written as IPv6 (::ffff:10.0.0.1) counts as itself."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # a zone index (fe80::1%eth0) is not part of the address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DestinationRefused(f"The host name {host!r} cannot be resolved.") from exc
    return list(dict.fromkeys(info[4][0] for info in infos))


def destination_addresses(host: str, port: int) -> list[str]:
    """The addresses to connect to for `host`, every one of them checked; DestinationRefused if any is not public
    (the whole name is refused: which address a client picks is not ours to choose)."""
    host = host.strip("[]")
    addresses = _resolve(host, port)
    if settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS:
        return addresses
    private = [address for address in addresses if not address_public(address)]
    if private:
        raise DestinationRefused(
            f"{host} is a private or local network address ({', '.join(private)}); webhooks post to public "
            "addresses only (WEBHOOK_ALLOW_PRIVATE_NETWORKS allows intranet receivers)."
        )
    return addresses


def destination_check_on_save(host: str, port: int) -> None:
    """The check when staff save a webhook. A name that does not resolve now is accepted (its DNS may not be set up
    yet): it is checked again, resolved, at every delivery."""
    try:
        destination_addresses(host, port)
    except DestinationRefused as exc:
        if isinstance(exc.__cause__, (socket.gaierror, UnicodeError)):
            return
        raise
