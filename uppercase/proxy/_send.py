"""
The PROXY protocol header (v1 or v2) a client sends first, as HAProxy's
C{send-proxy} and C{send-proxy-v2} do, so that a server's C{haproxy:}
listener can be tested end to end without HAProxy.  The header names the
connection's own addresses (ours as the source, the server's as the
destination); a connection that is not TCP gets v1's C{UNKNOWN} or v2's
C{LOCAL}.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.address import IPv4Address, IPv6Address

from uppercase.proxy._codec import Address, encodeHeader

__all__ = ["VERSIONS", "proxyHeader", "proxyPreamble"]

VERSIONS = ("v1", "v2")


def proxyHeader(version: str, source: object, destination: object) -> bytes:
    """
    The PROXY header C{version} (C{"v1"} or C{"v2"}) for a connection from
    C{source} to C{destination} (Twisted addresses): v1's C{UNKNOWN} or v2's
    C{LOCAL} for a connection that is not TCP.
    """
    return encodeHeader(VERSIONS.index(version) + 1, _address(source), _address(destination))


def _address(address: object) -> Address | None:
    if isinstance(address, (IPv4Address, IPv6Address)):
        return Address(address.host.split("%")[0], address.port)
    return None


def proxyPreamble(version: str) -> Callable[[Any], bytes]:
    """
    What a load protocol sends first on C{transport}: the PROXY header
    C{version} for its addresses, or nothing if C{version} is empty.
    """

    def preamble(transport: Any) -> bytes:
        if not version:
            return b""
        return proxyHeader(version, transport.getHost(), transport.getPeer())

    return preamble
