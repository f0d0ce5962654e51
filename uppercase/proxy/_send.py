"""
The PROXY protocol header (v1 or v2) a client sends first, as HAProxy's
C{send-proxy} and C{send-proxy-v2} do, so that a server's C{haproxy:}
listener can be tested end to end without HAProxy.  The header names the
connection's own addresses (ours as the source, the server's as the
destination); a connection that is not TCP gets v1's C{UNKNOWN} or v2's
C{LOCAL}.
"""

from __future__ import annotations

import socket
import struct
from typing import Any, Callable

from twisted.internet.address import IPv4Address, IPv6Address

from uppercase.proxy._wrapper import V2_SIGNATURE

__all__ = ["VERSIONS", "proxyHeader", "proxyPreamble"]

VERSIONS = ("v1", "v2")


def proxyHeader(version: str, source: object, destination: object) -> bytes:
    """
    The PROXY header C{version} (C{"v1"} or C{"v2"}) for a connection from
    C{source} to C{destination} (Twisted addresses).
    """
    both = (source, destination)
    if all(isinstance(a, IPv4Address) for a in both):
        family, v1, v2 = socket.AF_INET, b"TCP4", 0x11
    elif all(isinstance(a, IPv6Address) for a in both):
        family, v1, v2 = socket.AF_INET6, b"TCP6", 0x21
    else:
        return b"PROXY UNKNOWN\r\n" if version == "v1" else V2_SIGNATURE + b"\x20\x00\x00\x00"
    src: Any = source
    dst: Any = destination
    srcHost, dstHost = src.host.split("%")[0], dst.host.split("%")[0]
    if version == "v1":
        return b"PROXY %s %s %s %d %d\r\n" % (
            v1,
            srcHost.encode("ascii"),
            dstHost.encode("ascii"),
            src.port,
            dst.port,
        )
    body = (
        socket.inet_pton(family, srcHost)
        + socket.inet_pton(family, dstHost)
        + struct.pack("!HH", src.port, dst.port)
    )
    return V2_SIGNATURE + struct.pack("!BBH", 0x21, v2, len(body)) + body


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
