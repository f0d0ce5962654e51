"""
The uppercase server: the echo (L{uppercase.echo._stream}), uppercase or
plain, with a server's policies layered on it.

L{UppercaseFactory} admits connections (a connection limit and a per-address
limit, refusals logged once per burst), closes idle ones, closes gracefully
on request (nothing already echoed is lost), counts bytes, and logs each
connection.  Time comes in as an argument: build it with the reactor, or
with a L{twisted.internet.task.Clock} in tests.

    >>> from twisted.internet.task import Clock
    >>> factory = UppercaseFactory(Clock(), logData=False)
    >>> protocol = factory.buildProtocol(None)
    >>> plain = UppercaseFactory(Clock(), plain=True)  # RFC 862: bytes unchanged
"""

from __future__ import annotations

from time import time as now
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from uppercase.echo._stream import EchoProtocol, StreamEcho, UppercaseProtocol
from uppercase.net.peer import UNIX_PEER, describePeer, formatPeer, socketPath
from uppercase.net.tcpinfo import receivedAgo, unsentInKernel
from uppercase.net.transport import directWriter, pendingBytes
from uppercase.server._admission import Admission
from uppercase.server._faults import FaultSet
from uppercase.server._faulty import FaultyEcho
from uppercase.server._idle import IDLE_CHECKS, IdleSweeper
from uppercase.server._logbudget import ChunkLog, ConnectionLog
from uppercase.server._settings import DEFAULTS

__all__ = [
    "PREVIEW_BYTES",
    "PlainServerProtocol",
    "ServerEcho",
    "ServerProtocol",
    "UppercaseFactory",
    "preview",
]

log = Logger(namespace="uppercase.server")
INFO = LogLevel.info

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


class ServerEcho(StreamEcho):
    """
    An echo as the server runs it: its replies sent at once where the
    transport allows (L{uppercase.net.transport.directWriter}), logged,
    counted, and known to its L{UppercaseFactory} from C{connectionMade} to
    C{connectionLost}.  What it sends back is the echo's it is mixed with:
    L{ServerProtocol} (uppercase), L{PlainServerProtocol} (unchanged).

    @ivar host: the client's host (an IP address, or C{unix}).
    @ivar port: the client's port (L{None} for UNIX-socket clients).
    """

    factory: UppercaseFactory
    host = "unknown"
    port: int | None = None

    peer = "unknown"
    """The client's address as people write it (C{1.2.3.4:5}, C{[::1]:5}),
    or C{unix:PATH} (the socket's path) for a UNIX-socket client; set once
    in C{connectionMade}, read by every per-chunk log event."""

    faultKinds: tuple[str, ...] = ()
    """The faults this connection got (L{uppercase.server._faulty}), named in
    its close line."""

    folded: int | None = None
    """L{None} if this connection's lines are logged; otherwise the window
    of the factory's L{ConnectionLog} it was folded in (see
    L{uppercase.server._logbudget})."""

    def activity(self) -> tuple[int, int | None]:
        """
        A value that changes whenever the connection does something:
        receives bytes, drains its write buffer, or -- the peer reading
        what the kernel holds for it -- sees its kernel send queue change
        (where that can be read, see L{unsentInKernel}).  A peer reading
        slowly from a full kernel buffer is busy, not idle.
        """
        return (self.echoed + self.discarded + self.drains, unsentInKernel(self.transport))

    def sendProgress(self) -> tuple[int, int | None]:
        """
        A value that changes whenever what the connection owes its peer
        moves: its write buffer drains, or its kernel send queue changes.
        Unlike L{activity}, what the peer sends is not counted: a connection
        being closed is finished by the peer reading, not by its sending.
        """
        return (self.drains, unsentInKernel(self.transport))

    def connectionMade(self) -> None:
        super().connectionMade()
        # The fast path is the server's choice, made once per connection.
        self.send = directWriter(self.transport)
        path = None
        if self.port is None and self.host == UNIX_PEER:
            # Read now: a closed UNIX transport can no longer say.
            path = socketPath(self.transport.getHost())
        self.peer = formatPeer(self.host, self.port) if path is None else f"unix:{path}"
        self.factory.connectionOpened(self)
        self.folded = self.factory.connectionLog.opened()
        if self.folded is not None:
            return
        if self.port is None:
            log.info("Connection from {peer}", host=self.host, peer=self.peer)
        else:
            log.info(
                "Connection from {host} port {port}",
                host=self.host,
                port=self.port,
                peer=self.peer,
            )

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self.factory.connectionClosed(self)
        clean = reason.check(ConnectionDone) is not None or (
            # A UNIX-socket peer that closes after its EOF is seen shows up as
            # a loss; it is a clean end if nothing was left to send.
            self.peerFinished and pendingBytes(self.transport) == 0
        )
        if self.folded is not None:
            self.factory.connectionLog.closed(self.folded, clean)
            return
        received = self.echoed + self.discarded
        fields: dict[str, Any] = {
            "peer": self.peer,
            "received": received,
            "sent": self.echoed,
            "discarded": self.discarded,
        }
        # The word is part of the format, not a field: every field of an
        # event is data (the JSON log keeps them all).
        counts = "{received} byte received" if received == 1 else "{received} bytes received"
        if self.discarded:
            counts += ", {sent} sent back, {discarded} discarded while closing"
        if self.faultKinds:
            counts += "; faults: {faultList}"
            fields["faults"] = list(self.faultKinds)
            fields["faultList"] = ", ".join(self.faultKinds)
        if clean:
            log.info("Connection from {peer} closed (" + counts + ")", **fields)
        else:
            # A reset or a vanished peer is routine on the Internet: it is
            # reported, with its reason, at the same level as a clean close.
            log.info(
                "Connection from {peer} lost: {reason} (" + counts + ")",
                reason=reason.getErrorMessage(),
                **fields,
            )


class ServerProtocol(UppercaseProtocol, ServerEcho):
    """
    The uppercase echo as the server runs it (see L{ServerEcho}).
    """


class PlainServerProtocol(EchoProtocol, ServerEcho):
    """
    The plain echo (RFC 862: every byte back unchanged) as the server runs
    it (see L{ServerEcho}).
    """


RECEIVED = "Received {size} bytes from {peer}: {data}"
"""The per-chunk log event's format."""


class ChunkLogging(ServerEcho):
    """
    A server echo that also logs every received chunk: its size and the
    start of its bytes (mixed before L{ServerProtocol} or
    L{PlainServerProtocol}, whose C{dataReceived} it extends).

    The event goes to the logger's observer directly, with the fields
    C{log.info} would give it: C{Logger.emit} checks on every call that the
    level is a valid one (by iterating over the levels), which cost more
    than everything else an event does on the way to the log (2.8
    microseconds against 0.9 per event, measured on CPython).
    """

    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        if self.closing:
            return
        chunkLog = self.factory.chunkLog
        if not chunkLog.admit():
            chunkLog.fold(len(data))
        else:
            log.observer(
                {
                    "size": len(data),
                    "peer": self.peer,
                    "data": preview(data),
                    "log_logger": log,
                    "log_level": INFO,
                    "log_namespace": log.namespace,
                    "log_source": None,
                    "log_format": RECEIVED,
                    "log_time": now(),
                }
            )


class LoggingServerProtocol(ChunkLogging, ServerProtocol):
    """
    L{ServerProtocol} that also logs every received chunk.
    """


class PlainLoggingServerProtocol(ChunkLogging, PlainServerProtocol):
    """
    L{PlainServerProtocol} that also logs every received chunk.
    """


_PROTOCOLS: dict[tuple[bool, bool], type[ServerEcho]] = {
    (False, False): ServerProtocol,
    (False, True): LoggingServerProtocol,
    (True, False): PlainServerProtocol,
    (True, True): PlainLoggingServerProtocol,
}
"""The server's protocol, by (plain, logData)."""

_FAULTY: dict[type[ServerEcho], type[ServerEcho]] = {
    cls: type("Faulty" + cls.__name__, (FaultyEcho, cls), {}) for cls in _PROTOCOLS.values()
}
"""Each server protocol with faults (L{FaultyEcho} mixed before it)."""


class UppercaseFactory(ServerFactory):
    """
    Build L{ServerEcho}s under the server's policies: L{ServerProtocol}s
    (the uppercase echo), or L{PlainServerProtocol}s if C{plain}.

    @param clock: the reactor (or a test's clock) for every timer.
    @param logData: whether every received chunk is logged.
    @param plain: whether every byte is echoed unchanged (RFC 862) rather
        than uppercased.
    @param idleTimeout: seconds of inactivity after which a connection is
        closed (0 disables).
    @param maxConnections: most connections open at once (0: unlimited).
    @param maxPerIP: most connections at once from one host (0: unlimited).
    @param maxPending: most PROXY-protocol connections waiting for their
        header at once, apart from C{maxConnections} (0: unlimited).
    @param closeTimeout: seconds a connection closed for being idle may go
        on closing gracefully with no activity (see
        L{ServerProtocol.activity}) before it is aborted.
    @param faults: the faults to apply (L{FaultSet}, shared by every
        connection: a change to it affects the connections accepted after
        it), or L{None}.  A connection that draws none, and every
        connection while the set is empty, runs the echo without faults.

    @ivar admission: the limits (PROXY-protocol listeners take their
        waiting slots from it, see L{uppercase.proxy._wrapper.ProxyHeaderFactory}).
    @ivar connections: the open connections.
    @ivar accepted: connections admitted so far.
    @ivar idleClosed: connections closed for being idle so far.
    @ivar faults: the faults applied to new connections.
    """

    noisy = False

    def __init__(
        self,
        clock: IReactorTime,
        *,
        logData: bool = DEFAULTS.logData,
        idleTimeout: float = DEFAULTS.idleTimeout,
        maxConnections: int = DEFAULTS.maxConnections,
        maxPerIP: int = DEFAULTS.maxPerIP,
        maxPending: int = DEFAULTS.maxPendingHeaders,
        closeTimeout: float = DEFAULTS.shutdownTimeout,
        plain: bool = DEFAULTS.plain,
        faults: FaultSet | None = None,
    ) -> None:
        # Always a set, if an empty one: --control may add to it later.
        self.faults = faults if faults is not None else FaultSet()
        self.clock = clock
        self.protocolClass: type[ServerEcho] = _PROTOCOLS[plain, logData]
        self.idleTimeout = idleTimeout
        self.closeTimeout = closeTimeout
        self.admission = Admission(clock, maxConnections, maxPerIP, maxPending)
        self.connections: set[ServerEcho] = set()
        self.accepted = 0
        self.idleClosed = 0
        self._closedReceived = 0
        self._closedSent = 0
        self._idle = IdleSweeper(clock, idleTimeout, self._closeIdle) if idleTimeout else None
        self._deadlines: dict[ServerEcho, IDelayedCall] = {}
        self._closeWaiters: list[Deferred[None]] = []
        self.connectionLog = ConnectionLog(clock)
        self.chunkLog = ChunkLog(clock)

    @property
    def logData(self) -> bool:
        """
        Whether every received chunk is logged.
        """
        return issubclass(self.protocolClass, ChunkLogging)

    @property
    def plain(self) -> bool:
        """
        Whether every byte is echoed unchanged (RFC 862) rather than
        uppercased.
        """
        return issubclass(self.protocolClass, EchoProtocol)

    @property
    def rejected(self) -> int:
        """
        Connections refused by a limit or during shutdown so far.
        """
        return self.admission.rejected

    def buildProtocol(self, addr: IAddress | None) -> ServerEcho | None:  # type: ignore[override]
        """
        A protocol for a connection from C{addr}, or L{None} (the connection
        is closed at once) when a limit forbids it.
        """
        host, port = describePeer(addr)
        if not self.admission.admit(host, formatPeer(host, port)):
            return None
        faults = self.faults
        if not faults:
            protocol = self.protocolClass()
        else:
            protocol = _FAULTY[self.protocolClass]()
        protocol.factory = self
        protocol.host, protocol.port = host, port
        return protocol

    def connectionOpened(self, protocol: ServerEcho) -> None:
        """
        Track C{protocol} (called from its C{connectionMade}).
        """
        self.accepted += 1
        self.connections.add(protocol)
        if self._idle is not None:
            self._idle.watch(protocol)

    def connectionClosed(self, protocol: ServerEcho) -> None:
        """
        Forget C{protocol} (called from its C{connectionLost}).
        """
        self.admission.leave(protocol.host)
        if protocol not in self.connections:
            return
        self.connections.discard(protocol)
        if self._idle is not None:
            self._idle.forget(protocol)
        deadline = self._deadlines.pop(protocol, None)
        if deadline is not None and deadline.active():
            deadline.cancel()
        self._closedReceived += protocol.echoed + protocol.discarded
        self._closedSent += protocol.echoed
        if not self.connections and self._closeWaiters:
            waiters, self._closeWaiters = self._closeWaiters, []
            for waiter in waiters:
                waiter.callback(None)

    def _closeIdle(self, protocol: Any, idleSeconds: float) -> None:
        self.idleClosed += 1
        transport = protocol.transport
        if pendingBytes(transport) == 0 and unsentInKernel(transport) == 0:
            # Nothing owed: the kernel knows when the peer last sent data or
            # acknowledged ours, where the sweep knows it to a sweep interval.
            ago = receivedAgo(transport)
            if ago is not None:
                idleSeconds = min(
                    max(idleSeconds, ago), idleSeconds + self.idleTimeout / IDLE_CHECKS
                )
        log.info(
            "Closing connection from {peer}: idle for {idle:.1f} seconds",
            peer=protocol.peer,
            idle=idleSeconds,
            timeout=self.idleTimeout,
        )
        if protocol.closing:
            # Idle for a whole timeout while already closing: the peer is not
            # reading what it is owed.
            self._abort(protocol)
            return
        # Idle for a whole timeout: nothing it sent waits unread (reading is
        # paused only behind replies, and one that echoed half-closes anyway).
        protocol.finish(inputMayWait=False)
        if protocol in self.connections:
            self._lingerFrom(protocol, protocol.sendProgress())

    def _lingerFrom(self, protocol: ServerEcho, seen: object) -> None:
        """
        Abort C{protocol}, which is closing, if what it owes makes no
        progress in the next close timeout: a peer still reading what it is
        owed, however slowly, is left to finish; one that only goes on
        sending (its bytes are discarded) is not.
        """
        self._deadlines[protocol] = self.clock.callLater(
            self.closeTimeout, self._lingerCheck, protocol, seen
        )

    def _lingerCheck(self, protocol: ServerEcho, seen: object) -> None:
        progress = protocol.sendProgress()
        if progress != seen:
            self._lingerFrom(protocol, progress)
        else:
            self._abort(protocol)

    def _abort(self, protocol: ServerEcho) -> None:
        self._deadlines.pop(protocol, None)
        pending = pendingBytes(protocol.transport)
        queued = unsentInKernel(protocol.transport)
        if queued and protocol.halfClosed and pending == 0:
            # The FIN went to the kernel after the last byte, and the
            # kernel's count includes its sequence number: not a byte.
            queued -= 1
        if pending is None:
            unsent = "?"
        elif queued is None:
            unsent = f"{pending} (and what the kernel holds)"
        else:
            unsent = str(pending + queued)
        log.info(
            "Aborting connection from {peer}: still not closed ({unsent} bytes unsent)",
            peer=protocol.peer,
            unsent=unsent,
            pending=pending,
            queued=queued,
        )
        protocol.transport.abortConnection()

    def byteCounts(self) -> tuple[int, int]:
        """
        Bytes received from and sent back to clients since the start, over
        closed and open connections alike.
        """
        received, sent = self._closedReceived, self._closedSent
        for protocol in self.connections:
            received += protocol.echoed + protocol.discarded
            sent += protocol.echoed
        return received, sent

    def faultCounts(self) -> dict[str, int]:
        """
        Connections that got each fault so far, by kind (empty without a
        L{FaultSet}).
        """
        return self.faults.counts()

    def allClosed(self) -> Deferred[None]:
        """
        A L{Deferred} that fires once no connection is open (at once if none
        is).
        """
        if not self.connections:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._closeWaiters.append(waiter)
        return waiter

    def shutdown(self, timeout: float) -> Deferred[None]:
        """
        Refuse new connections, close every open one gracefully (see
        L{UppercaseProtocol.finish}), and abort those still open after
        C{timeout} seconds.

        @return: a L{Deferred} that fires once every connection is closed.
        """
        self.admission.stop()
        if not self.connections:
            return succeed(None)
        log.info(
            "Shutting down {count} {connections} (at most {timeout} seconds)",
            count=len(self.connections),
            connections=_connections(len(self.connections)),
            timeout=timeout,
        )
        for protocol in list(self.connections):
            protocol.finish()
        if not self.connections:
            return succeed(None)
        allClosed = self.allClosed()
        deadline = self.clock.callLater(timeout, self.abortAll, "at the shutdown timeout")

        def cancelDeadline(result: object) -> object:
            if deadline.active():
                deadline.cancel()
            return result

        allClosed.addBoth(cancelDeadline)
        return allClosed

    def abortAll(self, why: str = "now") -> None:
        """
        Abort every connection still open.
        """
        if not self.connections:
            return
        log.warn(
            "Aborting {count} {connections} still open {why}",
            count=len(self.connections),
            connections=_connections(len(self.connections)),
            why=why,
        )
        for protocol in list(self.connections):
            protocol.transport.abortConnection()


def _connections(count: int) -> str:
    """The word for C{count} connections in a log line."""
    return "connection" if count == 1 else "connections"
