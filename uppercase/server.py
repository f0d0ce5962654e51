"""
The uppercase echo server: a protocol that speaks it and a factory that
keeps track of its connections.

Every byte received goes back with ASCII C{a}-C{z} turned into C{A}-C{Z} and
every other byte unchanged, which is what C{bytes.upper} does (C{toupper} in
the C locale): binary-safe and independent of how the stream is chunked.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress, IHalfCloseableProtocol, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ._idle import IdleSweeper
from ._peer import describePeer, formatPeer
from ._refusals import RefusalLog
from ._throttle import ThrottledReading
from ._writebuffer import canWriteDirectly, owesData, writeDirectly

log = Logger()

PREVIEW_BYTES = 48
"""How many bytes of each received chunk the per-chunk log event shows."""


def preview(data: bytes) -> str:
    """
    A short, printable rendering of a chunk for the log: its C{repr}, cut
    after L{PREVIEW_BYTES} bytes.
    """
    if len(data) <= PREVIEW_BYTES:
        return repr(data)
    return repr(data[:PREVIEW_BYTES]) + "..."


@implementer(IHalfCloseableProtocol)
class UppercaseProtocol(ThrottledReading, Protocol):
    """
    Send every received byte back, ASCII-uppercased.

    Flow control: the transport's write buffer throttles reading (see
    L{ThrottledReading}), so a peer that sends but never reads cannot make
    the server buffer without bound.  Half-close: when the peer shuts down
    its sending side, everything owed is sent and then the connection is
    closed.
    """

    factory: UppercaseFactory
    transport: Any
    """A stream transport: L{ITransport} plus L{IConsumer}, L{IPushProducer}
    and, for TCP and UNIX sockets, L{IHalfCloseableDescriptor}."""
    received = 0
    """Bytes received and echoed on this connection."""
    discarded = 0
    """Bytes received and discarded during a graceful shutdown."""
    draining = False
    """Set once the server is shutting down: input is read and discarded."""
    host = "?"
    port: int | None = None
    idleMark = 0
    quietSweeps = 0
    _direct = False
    _refused = False

    @property
    def peer(self) -> str:
        """
        The client's address as people write it (C{1.2.3.4:5}, C{[::1]:5}).
        """
        return formatPeer(self.host, self.port)

    def activity(self) -> int:
        """
        A number that grows whenever the connection does something: receives
        bytes, or drains its write buffer.
        """
        return self.received + self.discarded + self.drains

    def connectionMade(self) -> None:
        self.host, self.port = describePeer(self.transport.getPeer())
        if not self.factory.admit(self):
            # Over a limit: closed at once, and never counted as open.
            self.draining = self._refused = True
            self.transport.loseConnection()
            return
        self.throttleReading()
        self._direct = canWriteDirectly(self.transport)
        log.info(
            "Connection from {host} port {port}",
            host=self.host,
            port=self.port,
            peer=self.peer,
        )

    def dataReceived(self, data: bytes) -> None:
        if self.draining:
            self.discarded += len(data)
            return
        if self._direct:
            writeDirectly(self.transport, data.upper())
        else:
            self.transport.write(data.upper())
        self.received += len(data)
        if self.factory.logData:
            log.info(
                "Received {size} bytes from {peer}: {data}",
                size=len(data),
                peer=self.peer,
                data=preview(data),
            )

    def readConnectionLost(self) -> None:
        """
        The peer shut down its sending side: send what is still owed, then
        close.
        """
        self.releaseThrottle()
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        """
        Our sending side is shut down (only during a graceful shutdown): keep
        reading, and discarding, until the peer closes.
        """

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        if self._refused:
            return
        self.factory.connectionClosed(self)
        if reason.check(ConnectionDone):
            log.info(
                "Connection from {peer} closed ({received} bytes received)",
                peer=self.peer,
                received=self.received,
            )
        else:
            # A reset or a vanished peer is routine on the Internet: it is
            # reported, with its reason, at the same level as a clean close.
            log.info(
                "Connection from {peer} lost: {reason} ({received} bytes received)",
                peer=self.peer,
                reason=reason.getErrorMessage(),
                received=self.received,
            )

    def shutdown(self) -> None:
        """
        Stop serving this connection gracefully.

        A connection that owes nothing is closed.  Otherwise what the server
        already read is delivered (echoed), the stream is ended with a FIN,
        and whatever the peer still sends is read and discarded until it
        closes its side too.
        """
        if self.draining:
            return
        self.draining = True
        transport = self.transport
        self.releaseThrottle()
        loseWriteConnection = getattr(transport, "loseWriteConnection", None)
        if loseWriteConnection is None or not owesData(transport):
            transport.loseConnection()
            return
        loseWriteConnection()
        transport.resumeProducing()

    def closeIdle(self) -> None:
        """
        Close this connection for having been idle for the idle timeout.
        """
        log.info(
            "Closing connection from {peer}: idle for {timeout} seconds",
            peer=self.peer,
            timeout=self.factory.idleTimeout,
        )
        transport = self.transport
        self.releaseThrottle()
        if owesData(transport):
            # The peer has not read what it was sent for a whole timeout:
            # waiting for the buffer to drain would wait forever.
            transport.abortConnection()
        else:
            transport.loseConnection()


class UppercaseFactory(Factory):
    """
    Build L{UppercaseProtocol}s, enforce connection limits and the idle
    timeout, and shut all connections down gracefully on request.

    @ivar logData: whether every received chunk is logged.
    @ivar idleTimeout: seconds of inactivity after which a connection is
        closed (0 disables).
    @ivar maxConnections: most connections at once (0 = unlimited).
    @ivar maxPerIP: most connections at once from one host (0 = unlimited).
    @ivar accepted: connections admitted.
    @ivar rejected: connections refused because of a limit or a shutdown.
    @ivar idleClosed: connections closed for being idle.
    """

    protocol = UppercaseProtocol  # type: ignore[assignment]
    noisy = False

    def __init__(
        self,
        *,
        clock: IReactorTime | None = None,
        logData: bool = True,
        idleTimeout: float = 300.0,
        maxConnections: int = 10000,
        maxPerIP: int = 0,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock: IReactorTime = clock  # type: ignore[assignment]
        self.logData = logData
        self.idleTimeout = idleTimeout
        self.maxConnections = maxConnections
        self.maxPerIP = maxPerIP
        self.connections: set[UppercaseProtocol] = set()
        self._perHost: dict[str, int] = {}
        self.accepted = 0
        self.rejected = 0
        self.idleClosed = 0
        self._closedReceived = 0
        self._closedSent = 0
        self._refusals = RefusalLog(self.clock)
        self._idle = (
            IdleSweeper(self.clock, idleTimeout, self.connections, self._closeIdle)
            if idleTimeout
            else None
        )
        self._stopping = False
        self._closeWaiters: list[Deferred[None]] = []

    def buildProtocol(self, addr: IAddress) -> Protocol | None:  # type: ignore[override]
        reason = self._overLimit()
        if reason is not None:
            self.rejected += 1
            self._refusals.refused(formatPeer(*describePeer(addr)), reason)
            return None
        return super().buildProtocol(addr)  # type: ignore[return-value]

    def _overLimit(self) -> str | None:
        if self._stopping:
            return "shutting down"
        if self.maxConnections and len(self.connections) >= self.maxConnections:
            return f"{self.maxConnections} connections already open"
        return None

    def admit(self, protocol: UppercaseProtocol) -> bool:
        """
        Count C{protocol} as open, unless a limit forbids it (called from its
        C{connectionMade}, where the address is the client's even behind a
        PROXY-protocol load balancer, which C{maxPerIP} needs).

        @return: whether C{protocol} was admitted.
        """
        host = protocol.host
        reason = self._overLimit()
        if reason is None and self.maxPerIP and self._perHost.get(host, 0) >= self.maxPerIP:
            reason = f"{self.maxPerIP} connections already open from {host}"
        if reason is not None:
            self.rejected += 1
            self._refusals.refused(protocol.peer, reason)
            return False
        self.accepted += 1
        self.connections.add(protocol)
        self._perHost[host] = self._perHost.get(host, 0) + 1
        if self._idle is not None:
            self._idle.watch(protocol)
        return True

    def connectionClosed(self, protocol: UppercaseProtocol) -> None:
        """
        Forget C{protocol} (called from its C{connectionLost}).
        """
        if protocol not in self.connections:
            return
        self.connections.discard(protocol)
        if self._idle is not None:
            self._idle.forget()
        self._closedReceived += protocol.received + protocol.discarded
        self._closedSent += protocol.received
        host = protocol.host
        left = self._perHost.get(host, 1) - 1
        if left:
            self._perHost[host] = left
        else:
            self._perHost.pop(host, None)
        if not self.connections and self._closeWaiters:
            waiters, self._closeWaiters = self._closeWaiters, []
            for waiter in waiters:
                waiter.callback(None)

    def _closeIdle(self, protocol: UppercaseProtocol) -> None:
        self.idleClosed += 1
        protocol.closeIdle()

    def byteCounts(self) -> tuple[int, int]:
        """
        Bytes received from and sent back to clients since the start, over
        closed and open connections alike.
        """
        received, sent = self._closedReceived, self._closedSent
        for protocol in self.connections:
            received += protocol.received + protocol.discarded
            sent += protocol.received
        return received, sent

    def shutdown(self, timeout: float) -> Deferred[None]:
        """
        Refuse new connections, shut every open one down gracefully, and
        abort those still open after C{timeout} seconds.

        @return: a L{Deferred} that fires once every connection is closed.
        """
        self._stopping = True
        self._refusals.flush()
        if not self.connections:
            return succeed(None)
        log.info(
            "Shutting down {count} connections (at most {timeout} seconds)",
            count=len(self.connections),
            timeout=timeout,
        )
        for protocol in list(self.connections):
            protocol.shutdown()
        if not self.connections:
            return succeed(None)
        allClosed: Deferred[None] = Deferred()
        self._closeWaiters.append(allClosed)
        deadline = self.clock.callLater(timeout, self._abortAll)

        def cancelDeadline(result: Any) -> Any:
            if deadline.active():
                deadline.cancel()
            return result

        return allClosed.addBoth(cancelDeadline)

    def _abortAll(self) -> None:
        log.warn(
            "Aborting {count} connections still open at the shutdown timeout",
            count=len(self.connections),
        )
        for protocol in list(self.connections):
            protocol.transport.abortConnection()
