"""Where a merchant's webhook may point (SSRF guard).

A URL must be ``https``; plain ``http`` only to a loopback host in development. In
production the host must resolve to public addresses only: private, loopback,
link-local, multicast, reserved and unspecified ones are refused, both when the URL is
registered and again at every delivery, which then connects to the very address it
checked (a name that resolved to a public address at registration may resolve to an
internal one later: DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

#: Hosts that name the loopback interface without resolving.
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedUrl(ValueError):
    """A destination the webhooks will not call; ``code`` says why (the API's 422)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str
    port: int
    #: The request target: path and query.
    target: str

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def parse(url: str, *, development: bool) -> Destination:
    """The URL's parts, or ``RefusedUrl``: not an absolute http(s) URL, credentials in
    it, or plain http outside development or to a host that is not loopback."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise RefusedUrl("invalid_url", "the URL cannot be parsed") from None
    host = (parts.hostname or "").rstrip(".").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise RefusedUrl("invalid_url", "the URL must be absolute, https://host/path")
    if parts.username is not None or parts.password is not None:
        raise RefusedUrl("invalid_url", "the URL must not carry credentials")
    if parts.fragment or any(c.isspace() or ord(c) < 32 for c in url):
        raise RefusedUrl("invalid_url", "the URL must not have a fragment or spaces")
    if parts.scheme == "http" and not (development and is_loopback_host(host)):
        raise RefusedUrl("https_required", "webhook URLs must be https (plain http only to "
                         "a loopback host in development)")  # fmt: skip
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    default = 443 if parts.scheme == "https" else 80
    return Destination(parts.scheme, host, port or default, target)


def is_loopback_host(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    address = _literal(host)
    return address is not None and address.is_loopback


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` may not be called in production, or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for name in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(address, f"is_{name}"):
            return name.replace("_", "-")
    if not address.is_global:
        return "not-global"
    return None


def resolve(destination: Destination) -> list[IPAddress]:
    """Every address the host resolves to (a literal address is itself); ``RefusedUrl``
    when it does not resolve."""
    literal = _literal(destination.host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(destination.host, destination.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise RefusedUrl("unresolvable_host", f"{destination.host} does not resolve") from None
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def checked_addresses(destination: Destination, *, production: bool) -> list[IPAddress]:
    """The addresses to connect to: in production, every one the host resolves to must
    be public (one internal address among them refuses the URL: the resolver may hand
    out either)."""
    addresses = resolve(destination)
    if production:
        for address in addresses:
            reason = refusal(address)
            if reason is not None:
                raise RefusedUrl("address_not_allowed",
                                 f"{destination.host} resolves to a {reason} address "
                                 f"({address}); webhooks only go to public addresses")  # fmt: skip
    return addresses


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_url(url: str, *, production: bool) -> Destination:
    """The whole registration check (blocking: it may resolve the host)."""
    destination = parse(url, development=not production)
    if production:
        checked_addresses(destination, production=True)
    return destination
