"""
In-memory helpers for testing code against uppercase's protocols (and for
uppercase's own tests): no sockets, no reactor, no waiting.

L{StreamTransport} is Twisted's L{StringTransport} plus what a TCP
connection does that it does not model: bytes written but not yet sent (a
peer that does not read), the flow control they cause, half-close in both
directions, and the difference between a close and an abort.  The test plays
the peer through methods named for what the peer does (L{receive},
L{receiveEOF}, L{read}, L{reset}), as in::

    from twisted.internet.task import Clock
    from twisted.trial.unittest import SynchronousTestCase

    from uppercase.server._factory import UppercaseFactory
    from uppercase.testing import connectServer

    class EchoTests(SynchronousTestCase):
        def test_halfClose(self) -> None:
            protocol, transport = connectServer(UppercaseFactory(Clock(), logData=False))
            transport.receive(b"hello")
            transport.receiveEOF()
            self.assertEqual(transport.value(), b"HELLO")
            self.assertTrue(transport.disconnected)

L{connectInMemory} joins a client protocol and a server in memory, through
two such transports, and L{MemoryConnection.flush} moves bytes (and ends of
stream) between them until nothing more moves.
"""

from __future__ import annotations

from typing import Any, TypeVar
from typing import Protocol as TypingProtocol

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IAddress,
    IHalfCloseableDescriptor,
    IHalfCloseableProtocol,
    IProtocol,
    ITCPTransport,
)
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from zope.interface import implementer

from uppercase.net.interfaces import IDirectWrite, IPendingBytes, IUnsentInKernel

__all__ = [
    "CLIENT_ADDRESS",
    "SERVER_ADDRESS",
    "MemoryConnection",
    "BuildsProtocols",
    "Refused",
    "StreamTransport",
    "asciiUpper",
    "connectInMemory",
    "connectProtocol",
    "connectServer",
]

CLIENT_ADDRESS = IPv4Address("TCP", "192.0.2.7", 40000)
"""The peer address connections get by default (a documentation address)."""

SERVER_ADDRESS = IPv4Address("TCP", "127.0.0.1", 9527)
"""The local address connections get by default."""


def asciiUpper(data: bytes) -> bytes:
    """
    What an uppercase server sends back for C{data}: C{toupper} in the C
    locale, byte by byte (written without C{bytes.upper}, as an oracle).
    """
    return bytes(b - 32 if 97 <= b <= 122 else b for b in data)


@implementer(ITCPTransport, IHalfCloseableDescriptor, IPendingBytes, IDirectWrite, IUnsentInKernel)
class StreamTransport(StringTransport):
    """
    An in-memory TCP-like transport.

    Besides Twisted's C{ITCPTransport} and C{IHalfCloseableDescriptor}, it
    provides the extensions uppercase's server uses
    (L{uppercase.net.interfaces}): L{IPendingBytes} and L{IDirectWrite}.
    (For Twisted's own TCP and UNIX-socket transports, which cannot provide
    them, L{uppercase.net.transport} answers.)

    Writing: C{value()} is everything the protocol wrote.  With
    C{peerReads=True} (the default) the peer takes every byte at once;
    otherwise bytes stay unsent (L{pendingBytes}) until the test calls
    L{read}, and past L{bufferSize} unsent bytes a registered streaming
    producer is paused, as Twisted's transports do, and resumed once they
    are all sent.

    Closing: L{loseConnection} and L{loseWriteConnection} complete once
    nothing is left unsent: then L{disconnected} (and the protocol's
    C{connectionLost} with L{ConnectionDone}) or L{writeDisconnected} (and
    its C{writeConnectionLost}).  L{abortConnection} is immediate, with
    L{ConnectionAborted}; L{aborted} tells the two apart.

    Reading: L{receive} delivers bytes unless the protocol paused reading
    (C{pauseProducing}), in which case they wait until it resumes.
    L{receiveEOF} is the peer ending its side: C{readConnectionLost} for a
    half-closeable protocol, C{connectionLost} otherwise.

    @ivar writeDisconnecting: L{loseWriteConnection} was called.
    @ivar writeDisconnected: our sending side is shut down.
    @ivar disconnected: the connection is over (C{connectionLost} called).
    @ivar aborted: it ended with L{abortConnection}.
    @ivar reason: the failure C{connectionLost} got, once it did.
    @ivar eofReceived: the peer ended its sending side.
    @ivar kernelUnsent: what L{unsentInKernel} reports: bytes a real
        connection's kernel would hold for the peer beyond L{pendingBytes}
        (0: an in-memory connection has no kernel; L{None}: unknown, as on
        systems that cannot tell).  A test sets it to play a peer reading
        from a full kernel buffer.
    """

    bufferSize = 65536
    writeDisconnecting = False
    writeDisconnected = False
    disconnected = False
    aborted = False
    eofReceived = False
    kernelUnsent: int | None = 0
    reason: Failure | None = None
    protocol: Any = None

    def __init__(
        self,
        peer: IAddress = CLIENT_ADDRESS,
        host: IAddress = SERVER_ADDRESS,
        *,
        peerReads: bool = True,
    ) -> None:
        super().__init__(hostAddress=host, peerAddress=peer)
        self.peerReads = peerReads
        self._unsent = bytearray()
        self._inbox: list[bytes] = []
        self._eofWaiting = False

    def connect(self, protocol: IProtocol) -> None:
        """
        Connect C{protocol} to this transport (its C{makeConnection}); the
        peer's actions below reach it.
        """
        self.protocol = protocol
        protocol.makeConnection(self)

    # What the protocol calls.

    def write(self, data: bytes) -> None:
        if self.disconnected or self.writeDisconnected:
            return
        super().write(data)
        self._unsent += data
        if self.peerReads:
            self.read()
        elif len(self._unsent) > self.bufferSize and self.producer is not None:
            if self.streaming:
                self.producer.pauseProducing()

    def writeSequence(self, data: Any) -> None:
        for chunk in data:
            self.write(chunk)

    def writeDirectly(self, data: bytes) -> None:
        """
        L{write}: in memory, nothing waits for a reactor's turn, so every
        write is already a direct one (L{IDirectWrite}).
        """
        self.write(data)

    def loseConnection(self) -> None:
        if self.disconnected:
            return
        self.disconnecting = True
        self._settle()

    def loseWriteConnection(self) -> None:
        if self.disconnected:
            return
        self.writeDisconnecting = True
        self._settle()

    def abortConnection(self) -> None:
        if self.disconnected:
            return
        self.aborted = True
        self.disconnecting = True
        self._lost(Failure(ConnectionAborted()))

    def pauseProducing(self) -> None:
        """
        Stop delivering received bytes (L{receive} keeps them) until
        L{resumeProducing}; ignored once closing, as Twisted's transports do.
        """
        if not self.disconnecting:
            self.producerState = "paused"

    def stopProducing(self) -> None:
        self.producerState = "stopped"

    def resumeProducing(self) -> None:
        """
        Deliver what was received meanwhile, and resume delivering; ignored
        once closing.
        """
        if self.disconnecting:
            return
        self.producerState = "producing"
        while self._inbox and self.producerState == "producing" and not self.disconnecting:
            self._deliver(self._inbox.pop(0))
        if self._eofWaiting and not self._inbox and self.producerState == "producing":
            self._eofWaiting = False
            self.receiveEOF()

    def pendingBytes(self) -> int:
        """
        Bytes written and not yet sent (taken by the peer): L{IPendingBytes}.
        """
        return len(self._unsent)

    def unsentInKernel(self) -> int | None:
        """
        What the kernel would report holding for the peer: L{kernelUnsent},
        plus one for the FIN once the sending side is shut down with bytes
        still unacknowledged (Linux's C{SIOCOUTQ} counts the FIN's sequence
        number).
        """
        if self.kernelUnsent and self.writeDisconnected:
            return self.kernelUnsent + 1
        return self.kernelUnsent

    def getTcpNoDelay(self) -> bool:
        return False

    def setTcpNoDelay(self, enabled: bool) -> None:
        pass

    def getTcpKeepAlive(self) -> bool:
        return False

    def setTcpKeepAlive(self, enabled: bool) -> None:
        pass

    # What the peer does (the test calls these).

    def read(self, size: int | None = None) -> bytes:
        """
        The peer reads up to C{size} unsent bytes (all by default); a close
        waiting for them to be sent then completes.

        @return: the bytes read.
        """
        if size is None:
            size = len(self._unsent)
        taken = bytes(self._unsent[:size])
        del self._unsent[:size]
        if not self._unsent:
            if self.producer is not None and self.streaming and self.producerState != "stopped":
                # Twisted resumes a streaming producer once its buffer is empty.
                self.producer.resumeProducing()
            self._settle()
        return taken

    def receive(self, data: bytes) -> None:
        """
        The peer sends C{data}: delivered now, or once the protocol resumes
        reading.  Nothing is delivered after the connection was closed from
        this side.
        """
        if self.disconnected or self.disconnecting or self.eofReceived:
            return
        if self.producerState != "producing" or self._inbox:
            self._inbox.append(data)
            return
        self._deliver(data)

    def receiveEOF(self) -> None:
        """
        The peer ends its sending side (after whatever it sent before).
        """
        if self.disconnected or self.eofReceived:
            return
        if self._inbox or self.producerState != "producing":
            self._eofWaiting = True
            return
        self.eofReceived = True
        halfCloseable = IHalfCloseableProtocol(self.protocol, None)
        if halfCloseable is not None:
            halfCloseable.readConnectionLost()
        else:
            self._lost(Failure(ConnectionDone()))

    def reset(self) -> None:
        """
        The peer resets the connection (or vanishes).
        """
        if not self.disconnected:
            self._lost(Failure(ConnectionLost()))

    # IHalfCloseableDescriptor: what a reactor tells a descriptor.

    def readConnectionLost(self, reason: Failure) -> None:
        self.receiveEOF()

    def writeConnectionLost(self, reason: Failure) -> None:
        self.writeDisconnecting = True
        self._settle()

    # Internals.

    def _deliver(self, data: bytes) -> None:
        if self.protocol is None:
            raise RuntimeError("no protocol: connect one with StreamTransport.connect")
        self.protocol.dataReceived(data)

    def _settle(self) -> None:
        """
        Complete a close or half-close once nothing is left to send.
        """
        if self._unsent or self.disconnected:
            return
        if self.disconnecting:
            self._lost(Failure(ConnectionDone()))
        elif self.writeDisconnecting and not self.writeDisconnected:
            self.writeDisconnected = True
            halfCloseable = IHalfCloseableProtocol(self.protocol, None)
            if halfCloseable is not None:
                halfCloseable.writeConnectionLost()

    def _lost(self, reason: Failure) -> None:
        if self.disconnected:
            return
        self.disconnected = True
        self.disconnecting = True
        self.reason = reason
        self._inbox.clear()
        self.producerState = "stopped"
        protocol = self.protocol
        if self.producer is not None:
            self.producer.stopProducing()
        protocol.connectionLost(reason)


class Refused(Exception):
    """
    The factory refused the connection (its C{buildProtocol} returned
    L{None}).
    """


_P = TypeVar("_P", bound=IProtocol)
_Built = TypeVar("_Built", covariant=True)


class BuildsProtocols(TypingProtocol[_Built]):
    """
    The type of anything with a C{buildProtocol} (a Twisted factory), by
    the protocols it builds.  (Named apart from Twisted's
    C{twisted.internet.protocol.ServerFactory}, a class to subclass, which
    this is not.)
    """

    def buildProtocol(self, addr: Any) -> _Built | None:
        """
        A protocol for a connection from C{addr}, or L{None} to refuse it.
        """


def connectProtocol(
    protocol: _P,
    peer: IAddress = CLIENT_ADDRESS,
    host: IAddress = SERVER_ADDRESS,
    *,
    peerReads: bool = True,
) -> StreamTransport:
    """
    Connect C{protocol} to a new L{StreamTransport} (calls its
    C{makeConnection}).
    """
    transport = StreamTransport(peer, host, peerReads=peerReads)
    transport.connect(protocol)
    return transport


def connectServer(
    factory: BuildsProtocols[_Built],
    peer: IAddress = CLIENT_ADDRESS,
    host: IAddress = SERVER_ADDRESS,
    *,
    peerReads: bool = True,
) -> tuple[_Built, StreamTransport]:
    """
    Accept one connection from C{peer} on a server C{factory}: its
    C{buildProtocol(peer)}, connected to a new L{StreamTransport}.

    @return: the protocol (of the type the factory builds) and its
        transport.
    @raise Refused: if the factory refused the connection.
    """
    protocol = factory.buildProtocol(peer)
    if protocol is None:
        raise Refused(f"{factory!r} refused a connection from {peer}")
    transport = StreamTransport(peer, host, peerReads=peerReads)
    transport.connect(protocol)  # type: ignore[arg-type]
    return protocol, transport


class MemoryConnection:
    """
    A client protocol and a server protocol joined in memory.

    @ivar client: the client protocol.
    @ivar server: the server protocol.
    @ivar clientTransport: the client's transport (its peer is the server).
    @ivar serverTransport: the server's transport (its peer is the client).
    """

    def __init__(
        self,
        client: IProtocol,
        server: IProtocol,
        clientTransport: StreamTransport,
        serverTransport: StreamTransport,
    ) -> None:
        self.client = client
        self.server = server
        self.clientTransport = clientTransport
        self.serverTransport = serverTransport

    def flush(self, limit: int = 100000) -> None:
        """
        Move bytes, ends of stream and resets between the two sides until
        nothing more moves.

        @param limit: most rounds before giving up (a protocol pair that
            never goes quiet raises L{RuntimeError}).
        """
        for _ in range(limit):
            if not (
                self._move(self.clientTransport, self.serverTransport)
                | self._move(self.serverTransport, self.clientTransport)
            ):
                return
        raise RuntimeError("the two sides never went quiet")

    @staticmethod
    def _move(source: StreamTransport, target: StreamTransport) -> bool:
        moved = False
        if source.pendingBytes() and not target.disconnected:
            target.receive(source.read())
            moved = True
        if target.disconnected and not source.disconnected:
            # The other side is gone: what we send now is answered by a reset.
            if source.pendingBytes() or target.aborted:
                source.reset()
                moved = True
        ended = source.writeDisconnected or (source.disconnected and not source.aborted)
        if ended and not target.eofReceived and not target.disconnected:
            target.receiveEOF()
            moved = True
        if source.aborted and not target.disconnected:
            target.reset()
            moved = True
        return moved


def connectInMemory(
    serverFactory: BuildsProtocols[IProtocol],
    client: IProtocol,
    clientAddress: IAddress = CLIENT_ADDRESS,
    serverAddress: IAddress = SERVER_ADDRESS,
) -> MemoryConnection:
    """
    Connect C{client} to a server built by C{serverFactory}, in memory, and
    flush what they say on connecting.

    @raise Refused: if the server factory refused the connection.
    """
    server = serverFactory.buildProtocol(clientAddress)
    if server is None:
        raise Refused(f"{serverFactory!r} refused a connection from {clientAddress}")
    serverTransport = StreamTransport(clientAddress, serverAddress, peerReads=False)
    clientTransport = StreamTransport(serverAddress, clientAddress, peerReads=False)
    serverTransport.connect(server)
    clientTransport.connect(client)
    connection = MemoryConnection(client, server, clientTransport, serverTransport)
    connection.flush()
    return connection
