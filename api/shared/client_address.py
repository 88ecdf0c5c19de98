"""Who is on the other end: the connection's peer, or, only when that peer is a proxy
named in ``TRUSTED_PROXIES``, the address it says it forwarded for.

``X-Forwarded-For`` is read from the right: each trusted proxy appends the address it
took the request from, so the first address that is not a trusted proxy is the client.
Anything left of it was written by the client itself and is ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from aiohttp import web

Networks = tuple[IPv4Network | IPv6Network, ...]

#: What ``request.remote`` is when there is no peer address (a Unix socket).
UNKNOWN = "unknown"


def parse_networks(entries: Iterable[str]) -> Networks:
    return tuple(ip_network(entry, strict=False) for entry in entries)


def _trusted(address: str, proxies: Networks) -> bool:
    try:
        parsed = ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in proxies)


def client_address(request: web.Request, proxies: Networks) -> str:
    peer = request.remote or UNKNOWN
    if not proxies or not _trusted(peer, proxies):
        return peer
    forwarded = [
        part.strip()
        for header in request.headers.getall("X-Forwarded-For", [])
        for part in header.split(",")
    ]
    client = peer
    for hop in reversed(forwarded):
        try:
            client = str(ip_address(hop))
        except ValueError:
            break  # a malformed hop: believe nothing left of it
        if not _trusted(client, proxies):
            break
    return client
