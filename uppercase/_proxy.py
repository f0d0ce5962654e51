"""
The PROXY protocol (v1 and v2), for running behind HAProxy and other load
balancers: C{--listen haproxy:tcp:9527}.

Twisted ships a PROXY wrapper, but it connects the wrapped protocol before
the header has arrived (so C{connectionMade} sees the proxy's address) and,
as a plain L{ProtocolWrapper}, it hides L{IHalfCloseableProtocol}, which
breaks half-close.  This one reads the whole header first, then connects the
wrapped protocol with the client's address, and passes half-close through.

Spec: U{https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt}
"""

from __future__ import annotations

import socket
import struct
from typing import Any, Callable, Dict, Optional, Tuple

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHalfCloseableProtocol,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    ITransport,
)
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from zope.interface import directlyProvides, implementer, providedBy

log = Logger()

V1_PREFIX = b"PROXY "
V1_MAX = 107
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED = 16
V2_MAX = V2_FIXED + 65535

Addresses = Optional[Tuple[IAddress, IAddress]]
"""The client's and the proxy's (source, destination) addresses, or L{None}
when the header says the connection's own addresses are the real ones."""


_ADDRESS: Dict[int, Callable[..., IAddress]] = {
    socket.AF_INET: IPv4Address,
    socket.AF_INET6: IPv6Address,
}


class InvalidHeader(ValueError):
    """
    The connection did not start with a valid PROXY header.
    """


def parseHeader(data: bytes) -> tuple[Addresses, int] | None:
    """
    Parse a PROXY header at the start of C{data} (which is not empty).

    @return: L{None} if more bytes are needed; otherwise the addresses and
        the length of the header.

    @raise InvalidHeader: if C{data} cannot start a valid header.
    """
    if V2_SIGNATURE.startswith(data[:12]) and data[:1] == V2_SIGNATURE[:1]:
        if len(data) < V2_FIXED:
            return None
        return _parseV2(data)
    if V1_PREFIX.startswith(data[:6]) and data[:1] == V1_PREFIX[:1]:
        return _parseV1(data)
    raise InvalidHeader("not a PROXY protocol header")


def _parseV1(data: bytes) -> tuple[Addresses, int] | None:
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX:
            raise InvalidHeader("PROXY v1 header longer than 107 bytes")
        return None
    fields = data[:end].split(b" ")
    if len(fields) >= 2 and fields[1] == b"UNKNOWN":
        return None, end + 2
    if len(fields) != 6 or fields[1] not in (b"TCP4", b"TCP6"):
        raise InvalidHeader("malformed PROXY v1 header")
    _, family, source, destination, sourcePort, destinationPort = fields
    addressFamily = socket.AF_INET if family == b"TCP4" else socket.AF_INET6
    kind = _ADDRESS[addressFamily]
    try:
        hosts = [
            socket.inet_ntop(addressFamily, socket.inet_pton(addressFamily, host.decode("ascii")))
            for host in (source, destination)
        ]
        ports = [int(port) for port in (sourcePort, destinationPort)]
    except (OSError, ValueError, UnicodeDecodeError):
        raise InvalidHeader("malformed address in PROXY v1 header") from None
    if not all(0 <= port <= 65535 for port in ports):
        raise InvalidHeader("port out of range in PROXY v1 header")
    return (kind("TCP", hosts[0], ports[0]), kind("TCP", hosts[1], ports[1])), end + 2


def _parseV2(data: bytes) -> tuple[Addresses, int] | None:
    versionCommand, familyProtocol, length = struct.unpack("!BBH", data[12:16])
    if versionCommand >> 4 != 2:
        raise InvalidHeader("unsupported PROXY v2 version")
    total = V2_FIXED + length
    if len(data) < total:
        return None
    command = versionCommand & 0x0F
    if command == 0x0:  # LOCAL: a health check from the proxy itself
        return None, total
    if command != 0x1:
        raise InvalidHeader("unknown PROXY v2 command")
    body = data[V2_FIXED:total]
    if familyProtocol == 0x11 and length >= 12:  # TCP over IPv4
        source, destination, sourcePort, destinationPort = struct.unpack("!4s4sHH", body[:12])
        family, kind = socket.AF_INET, _ADDRESS[socket.AF_INET]
    elif familyProtocol == 0x21 and length >= 36:  # TCP over IPv6
        source, destination, sourcePort, destinationPort = struct.unpack("!16s16sHH", body[:36])
        family, kind = socket.AF_INET6, _ADDRESS[socket.AF_INET6]
    else:
        # UNSPEC, UDP or UNIX: the connection's own addresses stand.
        return None, total
    return (
        (
            kind("TCP", socket.inet_ntop(family, source), sourcePort),
            kind("TCP", socket.inet_ntop(family, destination), destinationPort),
        ),
        total,
    )


@implementer(IHalfCloseableProtocol)
class ProxyHeaderProtocol(ProtocolWrapper):
    """
    Read the PROXY header, then connect the wrapped protocol; its transport
    (this wrapper) reports the client's and proxy's addresses from the
    header.  Half-close is passed through.
    """

    _addresses: Addresses = None
    _wrappedConnected = False
    _timeout: IDelayedCall | None = None

    def __init__(self, factory: Any, wrappedProtocol: IProtocol) -> None:
        super().__init__(factory, wrappedProtocol)
        self._buffer = b""

    def makeConnection(self, transport: ITransport) -> None:
        # Connect only this wrapper; the wrapped protocol waits for the
        # header, which must come within the factory's header timeout.
        directlyProvides(self, providedBy(transport))
        Protocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)
        self._timeout = self.factory.clock.callLater(
            self.factory.headerTimeout, self._headerTimedOut
        )

    def _headerTimedOut(self) -> None:
        self._timeout = None
        log.warn(
            "Closing connection from {peer}: no PROXY header within {timeout}s",
            peer=str(self.transport.getPeer()),  # type: ignore[union-attr]
            timeout=self.factory.headerTimeout,
        )
        self.transport.abortConnection()  # type: ignore[union-attr]

    def _cancelTimeout(self) -> None:
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None

    def dataReceived(self, data: bytes) -> None:
        if self._wrappedConnected:
            self.wrappedProtocol.dataReceived(data)
            return
        buffer = self._buffer + data
        try:
            parsed = parseHeader(buffer)
        except InvalidHeader as e:
            peer = self.transport.getPeer()  # type: ignore[union-attr]
            log.warn("Closing connection from {peer}: {reason}", peer=str(peer), reason=str(e))
            self._buffer = b""
            self.transport.abortConnection()  # type: ignore[union-attr]
            return
        if parsed is None:
            self._buffer = buffer
            return
        self._cancelTimeout()
        self._addresses, length = parsed
        self._buffer = b""
        self._wrappedConnected = True
        self.wrappedProtocol.makeConnection(self)  # type: ignore[arg-type]
        if len(buffer) > length:
            self.wrappedProtocol.dataReceived(buffer[length:])

    def getPeer(self) -> IAddress:
        if self._addresses is not None:
            return self._addresses[0]
        return self.transport.getPeer()  # type: ignore[union-attr]

    def getHost(self) -> IAddress:
        if self._addresses is not None:
            return self._addresses[1]
        return self.transport.getHost()  # type: ignore[union-attr]

    def readConnectionLost(self) -> None:
        halfCloseable = IHalfCloseableProtocol(self.wrappedProtocol, None)
        if self._wrappedConnected and halfCloseable is not None:
            halfCloseable.readConnectionLost()
        else:
            self.transport.loseConnection()  # type: ignore[union-attr]

    def writeConnectionLost(self) -> None:
        halfCloseable = IHalfCloseableProtocol(self.wrappedProtocol, None)
        if self._wrappedConnected and halfCloseable is not None:
            halfCloseable.writeConnectionLost()

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self._cancelTimeout()
        if self._wrappedConnected:
            super().connectionLost(reason)
        else:
            self.connected = 0
            self.factory.unregisterProtocol(self)


class ProxyHeaderFactory(WrappingFactory):
    """
    Wrap every connection of C{wrappedFactory} in L{ProxyHeaderProtocol}.

    @ivar headerTimeout: seconds a connection may take to send its header.
    """

    protocol = ProxyHeaderProtocol
    noisy = False

    def __init__(
        self,
        wrappedFactory: IProtocolFactory,
        clock: IReactorTime,
        headerTimeout: float = 10.0,
    ) -> None:
        super().__init__(wrappedFactory)
        self.clock = clock
        self.headerTimeout = headerTimeout

    def logPrefix(self) -> str:
        return f"{self.wrappedFactory.__class__.__name__} (PROXY)"
