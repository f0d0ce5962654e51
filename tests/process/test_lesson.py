"""
The TCP lesson (docs/tcp-lesson.md), step by step, on real loopback sockets:
which callback of our protocols sees each thing TCP does.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from uppercase.echo import UppercaseProtocol


class RecordingServerProtocol(UppercaseProtocol):
    """
    The echo protocol, recording which callbacks it sees.
    """

    factory: RecordingFactory

    def connectionMade(self) -> None:
        self.factory.events.append(("connectionMade", self.transport.getPeer().port))
        super().connectionMade()

    def dataReceived(self, data: bytes) -> None:
        self.factory.events.append(("dataReceived", data))
        super().dataReceived(data)

    def readConnectionLost(self) -> None:
        self.factory.events.append(("readConnectionLost", None))
        super().readConnectionLost()

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self.factory.events.append(("connectionLost", reason.type))
        super().connectionLost(reason)
        self.factory.lost.callback(reason.type)


class RecordingFactory(Factory):
    """
    Builds L{RecordingServerProtocol}s and keeps what they record.
    """

    protocol = RecordingServerProtocol

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.lost: Deferred[type] = Deferred()


@implementer(IHalfCloseableProtocol)
class Peer(Protocol):
    """
    A client that collects what comes back and how the connection ends.
    """

    def __init__(self) -> None:
        self.received = b""
        self.halfClosed = False
        self.made: Deferred[None] = Deferred()
        self.got: Deferred[bytes] = Deferred()
        self.lost: Deferred[type] = Deferred()

    def connectionMade(self) -> None:
        self.made.callback(None)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if not self.got.called and self.received.endswith(b"\n"):
            self.got.callback(self.received)

    def readConnectionLost(self) -> None:
        self.halfClosed = True
        self.transport.loseConnection()  # type: ignore[union-attr]

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self.lost.callback(reason.type)


class TCPLessonTests(TestCase):
    """
    Each step of the lesson, demonstrated.
    """

    timeout = 20

    def setUp(self) -> None:
        self.factory = RecordingFactory()
        self.port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)

    def connect(self) -> Deferred[Peer]:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port.getHost().port)
        return connectProtocol(endpoint, Peer())

    def eventNames(self) -> list[str]:
        return [name for name, _ in self.factory.events]

    @inlineCallbacks
    def test_handshakeIsConnectionMade(self) -> Any:
        """
        Step 1, the three-way handshake (SYN, SYN-ACK, ACK): it is over when
        C{connectionMade} runs, on the client and on the server, which knows
        the client's port.
        """
        peer = yield self.connect()
        yield peer.made
        clientPort = peer.transport.getHost().port
        peer.transport.write(b"x\n")
        yield peer.got
        self.assertEqual(self.factory.events[0], ("connectionMade", clientPort))
        peer.transport.loseConnection()
        yield self.factory.lost

    @inlineCallbacks
    def test_dataIsDataReceived(self) -> Any:
        """
        Step 2, data and ACKs: the bytes a peer writes arrive through
        C{dataReceived}, in order and complete, possibly in other pieces than
        they were written; ACKs are the kernel's business and never seen.
        """
        peer = yield self.connect()
        for piece in (b"he", b"llo", b"\n"):
            peer.transport.write(piece)
        reply = yield peer.got
        self.assertEqual(reply, b"HELLO\n")
        chunks = [data for name, data in self.factory.events if name == "dataReceived"]
        self.assertEqual(b"".join(chunks), b"hello\n")
        peer.transport.loseConnection()
        yield self.factory.lost

    @inlineCallbacks
    def test_halfCloseIsReadConnectionLost(self) -> Any:
        """
        Step 3, half-close: the client shuts down its sending side (a FIN);
        the server sees C{readConnectionLost}, still sends what it owes, and
        then closes (its FIN), which the client sees as C{readConnectionLost}
        too.
        """
        peer = yield self.connect()
        peer.transport.write(b"bye\n")
        peer.transport.loseWriteConnection()
        how = yield peer.lost
        self.assertEqual(peer.received, b"BYE\n")
        self.assertTrue(peer.halfClosed)
        self.assertIs(how, ConnectionDone)
        yield self.factory.lost
        self.assertEqual(
            self.eventNames(),
            ["connectionMade", "dataReceived", "readConnectionLost", "connectionLost"],
        )

    @inlineCallbacks
    def test_fourWayCloseIsConnectionLost(self) -> Any:
        """
        Step 4, the four-way close (FIN, ACK, FIN, ACK): both sides get
        C{connectionLost} with L{ConnectionDone}, a clean end.
        """
        peer = yield self.connect()
        yield peer.made
        peer.transport.loseConnection()
        clientSide = yield peer.lost
        serverSide = yield self.factory.lost
        self.assertIs(clientSide, ConnectionDone)
        self.assertIs(serverSide, ConnectionDone)

    @inlineCallbacks
    def test_resetIsConnectionLostNotDone(self) -> Any:
        """
        Step 5, a reset (RST): the server's C{connectionLost} gets
        L{ConnectionLost}, not L{ConnectionDone}.
        """
        peer = yield self.connect()
        yield peer.made
        handle = peer.transport.getHandle()
        handle.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.transport.loseConnection()
        serverSide = yield self.factory.lost
        self.assertTrue(issubclass(serverSide, ConnectionLost), serverSide)

    @inlineCallbacks
    def test_refusedIsAFailedConnect(self) -> Any:
        """
        Step 6, nothing listening: the SYN is answered with a RST and the
        connection attempt fails with L{ConnectionRefusedError}; no protocol
        callback runs at all.
        """
        portNumber = self.port.getHost().port
        yield self.port.stopListening()
        peer = Peer()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", portNumber)
        with self.assertRaises(ConnectionRefusedError):
            yield connectProtocol(endpoint, peer)
        self.assertFalse(peer.made.called)
        self.assertEqual(self.factory.events, [])
