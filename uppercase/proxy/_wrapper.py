"""
The PROXY protocol (v1 and v2), for running behind HAProxy and other load
balancers: C{--listen haproxy:tcp:9527}.

L{ProxyHeaderFactory} wraps any server factory.  It reads the whole header
(the header's bytes are L{uppercase.proxy._codec}'s business)
first, then builds and connects the wrapped protocol with the client's
address (its C{buildProtocol} gets the client's address, and its transport's
C{getPeer} returns it), and passes half-close through.  On Twisted's own TCP
and UNIX transports the wrapper then steps out of the way: the connection
delivers straight to the wrapped protocol, whose transport is the
connection's own but for the addresses (L{ProxiedTransport}), so that once
its header is read a PROXY connection costs what a plain one does.  Twisted ships a PROXY
wrapper too, but it connects the wrapped protocol before the header has
arrived (so C{connectionMade} sees the proxy's address) and, as a plain
L{ProtocolWrapper}, it hides L{IHalfCloseableProtocol}, which breaks
half-close.

A header followed by nothing yet may be a proxy's health check: HAProxy's
C{check} sends a header (v2 C{LOCAL}, v1 C{UNKNOWN}, or with C{send-proxy}
a v1 C{TCP4} header with addresses) and then closes or resets.  Such a
connection is handed to the wrapped factory only once it sends data, so a
check that connects and closes is never seen (nor logged, nor counted) by
it.  One whose header gives a client's address and that stays silent until
the header timeout is a real client that waits: it is handed over then (one
with no address is closed, as a check that never ended).

Spec: U{https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt}

    >>> from twisted.internet import reactor
    >>> from twisted.internet.protocol import Factory
    >>> from uppercase.echo._stream import UppercaseProtocol
    >>> factory = ProxyHeaderFactory(Factory.forProtocol(UppercaseProtocol), reactor)
"""

from __future__ import annotations

from typing import Any, Optional, Tuple
from typing import Protocol as TypingProtocol

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHalfCloseableProtocol,
    IProtocolFactory,
    IReactorTime,
    ITransport,
)
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from zope.interface import directlyProvides, implementer, providedBy

from uppercase.net.interfaces import IDirectWriteTarget, IPendingBytes
from uppercase.net.peer import describePeer, formatPeer
from uppercase.net.transport import pendingBytes, splice
from uppercase.proxy._codec import InvalidHeader, decodeHeader

__all__ = [
    "Addresses",
    "InvalidHeader",
    "ProxiedTransport",
    "ProxyHeaderFactory",
    "ProxyHeaderProtocol",
    "SlotLimit",
    "parseHeader",
]

log = Logger(namespace="uppercase.proxy")

Addresses = Optional[Tuple[IAddress, IAddress]]
"""The client's and the proxy's (source, destination) addresses, or L{None}
when the header says the connection's own addresses are the real ones."""


def parseHeader(data: bytes) -> tuple[Addresses, int] | None:
    """
    Parse a PROXY header at the start of C{data} (which is not empty), with
    the addresses as Twisted's (L{decodeHeader} gives them as text).

    @return: L{None} if more bytes are needed; otherwise the addresses and
        the length of the header.

    @raise InvalidHeader: if C{data} cannot start a valid header.
    """
    header = decodeHeader(data)
    if header is None:
        return None
    source, destination = header.source, header.destination
    if source is None or destination is None:
        return None, header.length
    kind = IPv6Address if source.ipv6 else IPv4Address
    return (
        (kind("TCP", source.host, source.port), kind("TCP", destination.host, destination.port)),
        header.length,
    )


class SlotLimit(TypingProtocol):
    """
    A limit that connections still waiting for their header count against
    (L{uppercase.server._factory.UppercaseFactory}'s C{admission} is one).
    """

    def reserve(self, host: str, peer: str) -> bool:
        """
        Take a slot for a connection from C{host} (the TCP peer's address,
        shown as C{peer}); L{False} refuses it.
        """

    def release(self, host: str) -> None:
        """
        Give back a slot taken by L{reserve} for C{host}.
        """


@implementer(IHalfCloseableProtocol, IPendingBytes)
class ProxyHeaderProtocol(ProtocolWrapper):
    """
    Read the PROXY header, then build and connect the wrapped protocol; its
    transport (this wrapper) reports the client's and proxy's addresses from
    the header.  Half-close is passed through.
    """

    factory: ProxyHeaderFactory
    wrappedProtocol: Any
    _addresses: Addresses = None
    _wrappedConnected = False
    _timeout: IDelayedCall | None = None
    _reserved: str | None = None
    _healthCheck = False

    def __init__(self, factory: ProxyHeaderFactory) -> None:
        super().__init__(factory, None)  # type: ignore[arg-type]
        self._buffer = b""

    def makeConnection(self, transport: ITransport) -> None:
        # Connect only this wrapper; the wrapped protocol waits for the
        # header, which must come within the factory's header timeout.
        directlyProvides(self, providedBy(transport))
        Protocol.makeConnection(self, transport)
        self._timeout = self.factory.clock.callLater(
            self.factory.headerTimeout, self._headerTimedOut
        )

    def _proxyPeer(self) -> str:
        return formatPeer(*describePeer(self.transport.getPeer()))  # type: ignore[union-attr]

    def _headerTimedOut(self) -> None:
        self._timeout = None
        if self._healthCheck:
            if self._addresses is not None:
                # A client (the header says who) that has said nothing yet.
                self._connectWrapped(b"")
            else:
                self.transport.loseConnection()  # type: ignore[union-attr]
            return
        log.warn(
            "Closing connection from {peer}: no PROXY header within {timeout}s",
            peer=self._proxyPeer(),
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
        if self._healthCheck:
            self._connectWrapped(data)
            return
        buffer = self._buffer + data
        try:
            parsed = parseHeader(buffer)
        except InvalidHeader as e:
            log.warn(
                "Closing connection from {peer}: {reason}",
                peer=self._proxyPeer(),
                reason=str(e),
            )
            self._buffer = b""
            self.transport.abortConnection()  # type: ignore[union-attr]
            return
        if parsed is None:
            self._buffer = buffer
            return
        self._addresses, length = parsed
        self._buffer = b""
        rest = buffer[length:]
        if not rest:
            # A health check (HAProxy's send-proxy sends a v1 header with
            # addresses, then resets), or nothing said yet: wait for data.
            self._healthCheck = True
            return
        self._connectWrapped(rest)

    def _connectWrapped(self, data: bytes) -> None:
        self._cancelTimeout()
        self._release()
        self._healthCheck = False
        protocol = self.factory.wrappedFactory.buildProtocol(self.getPeer())
        if protocol is None:
            # Refused by the wrapped factory (which says why).
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        self.wrappedProtocol = protocol
        self._wrappedConnected = True
        transport: Any = self.transport
        if self._addresses is not None:
            transport = ProxiedTransport(transport, *self._addresses)
        if splice(self.transport, protocol):
            # From now on the connection delivers to the wrapped protocol
            # itself: this wrapper is out of the way.
            protocol.makeConnection(transport)
        else:
            protocol.makeConnection(self)
        if data:
            protocol.dataReceived(data)

    def _release(self) -> None:
        if self._reserved is not None:
            host, self._reserved = self._reserved, None
            self.factory.releaseSlot(host)

    def getPeer(self) -> IAddress:
        if self._addresses is not None:
            return self._addresses[0]
        return self.transport.getPeer()  # type: ignore[union-attr]

    def getHost(self) -> IAddress:
        if self._addresses is not None:
            return self._addresses[1]
        return self.transport.getHost()  # type: ignore[union-attr]

    def pendingBytes(self) -> int | None:
        """
        Bytes written and not yet handed to the kernel, as the underlying
        transport says (see L{uppercase.net.transport.pendingBytes}).
        """
        return pendingBytes(self.transport)  # type: ignore[arg-type]

    def readConnectionLost(self) -> None:
        halfCloseable = IHalfCloseableProtocol(self.wrappedProtocol, None)
        if self._wrappedConnected and halfCloseable is not None:
            halfCloseable.readConnectionLost()
            return
        if not self._wrappedConnected and self._buffer:
            # It said something, but not a whole header (a v1 header ending
            # in a bare LF, say); a connection that says nothing is a probe.
            log.warn(
                "Closing connection from {peer}: it ended its side before its PROXY "
                "header was complete",
                peer=self._proxyPeer(),
            )
            self._buffer = b""
        self.transport.loseConnection()  # type: ignore[union-attr]

    def writeConnectionLost(self) -> None:
        halfCloseable = IHalfCloseableProtocol(self.wrappedProtocol, None)
        if self._wrappedConnected and halfCloseable is not None:
            halfCloseable.writeConnectionLost()

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self._cancelTimeout()
        self._release()
        self.connected = 0
        if self._wrappedConnected:
            self._wrappedConnected = False
            self.wrappedProtocol.connectionLost(reason)


@implementer(IDirectWriteTarget, IPendingBytes)
class ProxiedTransport:
    """
    A connection as the protocol behind a PROXY header sees it: the
    connection's own transport, except that C{getPeer} and C{getHost} give
    the addresses from the header.  Writes go straight to the connection.
    """

    def __init__(self, transport: Any, peer: IAddress, host: IAddress) -> None:
        directlyProvides(self, providedBy(transport))
        self.transport = transport
        self._peer = peer
        self._host = host
        self.write = transport.write
        self.writeSequence = transport.writeSequence

    def getPeer(self) -> IAddress:
        return self._peer

    def getHost(self) -> IAddress:
        return self._host

    def directWriteTarget(self) -> Any:
        """
        The connection to write to directly (see
        L{uppercase.net.transport.directWriteTarget}).
        """
        return self.transport

    def pendingBytes(self) -> int | None:
        """
        Bytes written and not yet handed to the kernel (see
        L{uppercase.net.transport.pendingBytes}).
        """
        return pendingBytes(self.transport)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class ProxyHeaderFactory(WrappingFactory):
    """
    Wrap every connection of C{wrappedFactory} in L{ProxyHeaderProtocol}.

    @param wrappedFactory: the factory whose protocols speak after the
        header; its C{buildProtocol} is called with the client's address
        once the header has arrived, and may refuse (return L{None}).
    @param clock: for the header timeout.
    @param headerTimeout: seconds a connection may take to send its header.
    @param limit: what connections still waiting for their header count
        against (L{None}: nothing).  Without one, anybody can hold open as
        many connections as the process has descriptors.
    """

    protocol = ProxyHeaderProtocol
    noisy = False

    def __init__(
        self,
        wrappedFactory: IProtocolFactory,
        clock: IReactorTime,
        headerTimeout: float = 10.0,
        limit: SlotLimit | None = None,
    ) -> None:
        super().__init__(wrappedFactory)
        self.clock = clock
        self.headerTimeout = headerTimeout
        self.limit = limit

    def buildProtocol(self, addr: IAddress | None) -> ProxyHeaderProtocol | None:  # type: ignore[override]
        """
        A wrapper for a new connection from the proxy at C{addr}, or L{None}
        if the limit forbids it.
        """
        protocol = ProxyHeaderProtocol(self)
        if self.limit is not None:
            host, port = describePeer(addr)
            if not self.limit.reserve(host, formatPeer(host, port)):
                return None
            protocol._reserved = host
        return protocol

    def releaseSlot(self, host: str) -> None:
        """
        Give back the slot a connection from C{host} held while waiting for
        its header.
        """
        if self.limit is not None:
            self.limit.release(host)

    def logPrefix(self) -> str:
        return f"{self.wrappedFactory.__class__.__name__} (PROXY)"
