"""
The PROXY protocol header (v1 and v2), read and written as bytes: no
transport, no reactor, no Twisted.

L{decodeHeader} is fed what a connection has received so far and says, as
h11 does, "need more data" (L{None}), "this is not a PROXY header"
(L{InvalidHeader}), or the header and how many bytes it took.
L{encodeHeader} writes the header a proxy (or our client's C{--send-proxy})
sends.  The Twisted wrapper that serves PROXY connections
(L{uppercase.proxy._wrapper}) and the client's preamble
(L{uppercase.proxy._send}) are thin adapters over these two.

Spec: U{https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt}
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "Address",
    "InvalidHeader",
    "ProxyHeader",
    "V1_MAX",
    "V2_SIGNATURE",
    "decodeHeader",
    "encodeHeader",
]

V1_PREFIX = b"PROXY "
V1_MAX = 107
"""The longest v1 header, CRLF included."""
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED = 16


class InvalidHeader(ValueError):
    """
    The bytes cannot start a valid PROXY header.
    """


class Address(NamedTuple):
    """
    A TCP address as the header carries it: an IPv4 or IPv6 address in its
    canonical text form, and a port.
    """

    host: str
    port: int

    @property
    def ipv6(self) -> bool:
        return ":" in self.host


@dataclass(frozen=True)
class ProxyHeader:
    """
    A decoded PROXY header.

    @ivar version: 1 or 2.
    @ivar source: the client's address, or L{None} when the header says
        the connection's own addresses stand (v1 C{UNKNOWN}; v2 C{LOCAL},
        a proxy's health check; v2 with a family other than TCP).
    @ivar destination: the address the client connected to, or L{None}
        with C{source}.
    @ivar length: the header's length in bytes: the connection's own data
        starts there.
    """

    version: int
    source: Address | None
    destination: Address | None
    length: int


def decodeHeader(data: bytes) -> ProxyHeader | None:
    """
    The PROXY header at the start of C{data} (not empty).

    @return: L{None} if more bytes are needed to tell.
    @raise InvalidHeader: if C{data} cannot start a valid header.
    """
    if data[:1] == V2_SIGNATURE[:1] and V2_SIGNATURE.startswith(data[:12]):
        if len(data) < V2_FIXED:
            return None
        return _decodeV2(data)
    if data[:1] == V1_PREFIX[:1] and V1_PREFIX.startswith(data[:6]):
        return _decodeV1(data)
    raise InvalidHeader("not a PROXY protocol header")


def _decodeV1(data: bytes) -> ProxyHeader | None:
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX:
            raise InvalidHeader("PROXY v1 header longer than 107 bytes")
        return None
    fields = data[:end].split(b" ")
    if len(fields) >= 2 and fields[1] == b"UNKNOWN":
        return ProxyHeader(1, None, None, end + 2)
    if len(fields) != 6 or fields[1] not in (b"TCP4", b"TCP6"):
        raise InvalidHeader("malformed PROXY v1 header")
    _, family, source, destination, sourcePort, destinationPort = fields
    addressFamily = socket.AF_INET if family == b"TCP4" else socket.AF_INET6
    try:
        hosts = [
            socket.inet_ntop(addressFamily, socket.inet_pton(addressFamily, host.decode("ascii")))
            for host in (source, destination)
        ]
        # Plain decimal digits only: int() also takes "+1" and "1_0".
        if not (sourcePort.isdigit() and destinationPort.isdigit()):
            raise ValueError("port not in digits")
        ports = [int(port) for port in (sourcePort, destinationPort)]
    except (OSError, ValueError, UnicodeDecodeError):
        raise InvalidHeader("malformed address in PROXY v1 header") from None
    if not all(0 <= port <= 65535 for port in ports):
        raise InvalidHeader("port out of range in PROXY v1 header")
    return ProxyHeader(1, Address(hosts[0], ports[0]), Address(hosts[1], ports[1]), end + 2)


def _decodeV2(data: bytes) -> ProxyHeader | None:
    versionCommand, familyProtocol, length = struct.unpack("!BBH", data[12:16])
    if versionCommand >> 4 != 2:
        raise InvalidHeader("unsupported PROXY v2 version")
    total = V2_FIXED + length
    if len(data) < total:
        return None
    command = versionCommand & 0x0F
    if command == 0x0:  # LOCAL: a health check from the proxy itself
        return ProxyHeader(2, None, None, total)
    if command != 0x1:
        raise InvalidHeader("unknown PROXY v2 command")
    body = data[V2_FIXED:total]
    if familyProtocol == 0x11 and length >= 12:  # TCP over IPv4
        source, destination, sourcePort, destinationPort = struct.unpack("!4s4sHH", body[:12])
        family = socket.AF_INET
    elif familyProtocol == 0x21 and length >= 36:  # TCP over IPv6
        source, destination, sourcePort, destinationPort = struct.unpack("!16s16sHH", body[:36])
        family = socket.AF_INET6
    else:
        # UNSPEC, UDP or UNIX: the connection's own addresses stand.
        return ProxyHeader(2, None, None, total)
    return ProxyHeader(
        2,
        Address(socket.inet_ntop(family, source), sourcePort),
        Address(socket.inet_ntop(family, destination), destinationPort),
        total,
    )


def encodeHeader(version: int, source: Address | None, destination: Address | None) -> bytes:
    """
    The PROXY header C{version} (1 or 2) for a connection from C{source} to
    C{destination}: v1's C{UNKNOWN} or v2's C{LOCAL} when either is L{None}
    or the two are not of one family.

    @raise ValueError: for another version, or a host that is no IP address.
    """
    if version not in (1, 2):
        raise ValueError(f"PROXY protocol version 1 or 2, not {version!r}")
    if source is None or destination is None or source.ipv6 != destination.ipv6:
        return b"PROXY UNKNOWN\r\n" if version == 1 else V2_SIGNATURE + b"\x20\x00\x00\x00"
    family = socket.AF_INET6 if source.ipv6 else socket.AF_INET
    if version == 1:
        hosts = [
            socket.inet_ntop(family, socket.inet_pton(family, a.host)).encode("ascii")
            for a in (source, destination)
        ]
        return b"PROXY %s %s %s %d %d\r\n" % (
            b"TCP6" if source.ipv6 else b"TCP4",
            hosts[0],
            hosts[1],
            source.port,
            destination.port,
        )
    body = (
        socket.inet_pton(family, source.host)
        + socket.inet_pton(family, destination.host)
        + struct.pack("!HH", source.port, destination.port)
    )
    return V2_SIGNATURE + struct.pack("!BBH", 0x21, 0x21 if source.ipv6 else 0x11, len(body)) + body
