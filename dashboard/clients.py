"""Who a request comes from, for the per-address limits (login attempts, the web chat's consents and posts).

Behind the deployment's entry (docker/nginx.conf) every request's peer is the entry, so the limits would
apply to the whole city at once. The entry says who it got the request from in X-Forwarded-For; that header
is believed only when the peer is one of the trusted proxies (MINHU_TRUSTED_PROXIES; none by default, as
`make run` has no proxy), because anyone can send it. The client is then the right-most address that is not
a trusted proxy: what the outermost trusted proxy saw, not what the sender wrote further left."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
TRUSTED_PROXIES = web.AppKey("trusted_proxies", tuple)
UNKNOWN = "?"


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(request: web.Request) -> str:
    """The client's address: the peer's, or, when the peer is a trusted proxy, the right-most address in
    X-Forwarded-For that is not one (the left-most if all are)."""
    peer = request.remote or UNKNOWN
    proxies: tuple[Network, ...] = request.app.get(TRUSTED_PROXIES, ())
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [
        hop.strip() for value in request.headers.getall("X-Forwarded-For", []) for hop in value.split(",")
    ]
    hops = [hop for hop in hops if hop]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop
    return hops[0] if hops else peer
