"""
The TCP lesson (docs/tcp-lesson.md), step by step, on real loopback sockets:
which callback of our protocols sees each thing TCP does.

The server side is the server's own protocol (L{uppercase.server.ServerProtocol},
the echo of L{uppercase.echo.UppercaseProtocol} with its logging), recording
the callbacks it sees; the client side is a bare half-closing peer (like
C{nc -N}) or our L{uppercase.client.UppercaseClientProtocol}.
"""

from __future__ import annotations

import os
from typing import Any, cast

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IHalfCloseableProtocol, IListeningPort
from twisted.internet.protocol import Protocol
from twisted.internet.utils import getProcessOutputAndValue
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from uppercase.client import UppercaseClientProtocol
from uppercase.server import ServerProtocol, UppercaseFactory

from ._process import script


class RecordingServerProtocol(ServerProtocol):
    """
    The server's protocol, recording which callbacks it sees.
    """

    factory: RecordingFactory

    def connectionMade(self) -> None:
        self.factory.events.append(("connectionMade", None))
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
        self.factory.lost.callback(cast(type, reason.type))


class RecordingFactory(UppercaseFactory):
    """
    The server's factory (no idle timeout, so no timer outlives a test),
    building L{RecordingServerProtocol}s and keeping what they record.
    """

    def __init__(self) -> None:
        super().__init__(reactor, logData=False, idleTimeout=0)
        self.protocolClass = RecordingServerProtocol
        self.events: list[tuple[str, Any]] = []
        self.lost: Deferred[type] = Deferred()

    def eventNames(self) -> list[str]:
        """
        The callbacks seen so far, in order, consecutive C{dataReceived}s as
        one (TCP may deliver a write in any number of pieces).
        """
        names: list[str] = []
        for name, _ in self.events:
            if not (name == "dataReceived" and names and names[-1] == name):
                names.append(name)
        return names


@implementer(IHalfCloseableProtocol)
class Peer(Protocol):
    """
    A client that collects what comes back and how the connection ends; at
    the server's FIN it closes too, as C{nc -N} does.

    @ivar receivedAtFin: what had arrived when the server's FIN did.
    """

    receivedAtFin: bytes | None = None

    def __init__(self) -> None:
        self.received = b""
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
        self.receivedAtFin = self.received
        self.transport.loseConnection()  # type: ignore[union-attr]

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self.lost.callback(cast(type, reason.type))


class RecordingClientProtocol(UppercaseClientProtocol):
    """
    Our client, recording how its connection ended and what the server had
    seen by then.
    """

    def __init__(self, server: RecordingFactory, **kwargs: Any) -> None:
        super().__init__(b"hello", clock=reactor, **kwargs)
        self.server = server
        self.lostReason: type | None = None
        self.serverSawAtLoss: list[str] = []

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self.lostReason = reason.type
        self.serverSawAtLoss = self.server.eventNames()
        super().connectionLost(reason)


def portOf(port: IListeningPort) -> int:
    """
    The TCP port number a listening port is bound to.
    """
    address = port.getHost()
    assert isinstance(address, IPv4Address)
    return address.port


class TCPLessonTests(TestCase):
    """
    Each step of the lesson, demonstrated.
    """

    timeout = 20

    def setUp(self) -> None:
        self.factory = RecordingFactory()
        self.port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.logged: list[str] = []

        @implementer(ILogObserver)
        def observe(event: LogEvent) -> None:
            if event.get("log_namespace") == "uppercase.server":
                self.logged.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def connect(self, protocol: Protocol) -> Deferred[Any]:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", portOf(self.port))
        return connectProtocol(endpoint, protocol)

    @inlineCallbacks
    def test_handshakeIsConnectionMade(self) -> Any:
        """
        Step 1, the three-way handshake (SYN, SYN-ACK, ACK): it is over when
        C{connectionMade} runs, on the client and on the server, whose
        C{connectionMade} logs the client's IP and port.
        """
        peer = yield self.connect(Peer())
        yield peer.made
        clientPort = peer.transport.getHost().port
        peer.transport.write(b"x\n")
        yield peer.got
        self.assertEqual(self.factory.events[0], ("connectionMade", None))
        self.assertEqual(self.logged[0], f"Connection from 127.0.0.1 port {clientPort}")
        peer.transport.loseConnection()
        yield self.factory.lost

    @inlineCallbacks
    def test_dataIsDataReceived(self) -> Any:
        """
        Step 2, data and ACKs: the bytes a peer writes arrive through
        C{dataReceived}, in order and complete, possibly in other pieces than
        they were written (here C{he}, C{llo}, C{\\n}), and come back
        uppercased; ACKs are the kernel's business and never seen.
        """
        peer = yield self.connect(Peer())
        for piece in (b"he", b"llo", b"\n"):
            peer.transport.write(piece)
        reply = yield peer.got
        self.assertEqual(reply, b"HELLO\n")
        chunks = [data for name, data in self.factory.events if name == "dataReceived"]
        self.assertEqual(b"".join(chunks), b"hello\n")
        peer.transport.loseConnection()
        yield self.factory.lost

    @inlineCallbacks
    def test_finBeforeTheReplyIsReadConnectionLost(self) -> Any:
        """
        Step 3, half-close, as C{nc -N} does it: the client's FIN follows its
        data at once, before any reply.  The server sees C{dataReceived} and
        then C{readConnectionLost}, still sends the whole reply, and only
        then closes: its FIN arrives after the last byte of the reply, and
        both sides end with L{ConnectionDone}, logged as a clean close.
        """
        peer = yield self.connect(Peer())
        clientPort = peer.transport.getHost().port
        peer.transport.write(b"hello\n")
        peer.transport.loseWriteConnection()
        clientSide = yield peer.lost
        serverSide = yield self.factory.lost
        self.assertEqual(peer.receivedAtFin, b"HELLO\n")
        self.assertEqual(peer.received, b"HELLO\n")
        self.assertIs(clientSide, ConnectionDone)
        self.assertIs(serverSide, ConnectionDone)
        self.assertEqual(
            self.factory.eventNames(),
            ["connectionMade", "dataReceived", "readConnectionLost", "connectionLost"],
        )
        self.assertEqual(
            self.logged[-1],
            f"Connection from 127.0.0.1:{clientPort} closed (6 bytes received)",
        )

    @inlineCallbacks
    def test_everythingOwedAtTheFinIsSent(self) -> Any:
        """
        Step 3, half-close with much to send back: a client that queues
        1 MiB and its FIN behind it gets all 1 MiB back uppercased, every
        byte of it before the server's FIN; both sides end with
        L{ConnectionDone}, the server's last callbacks being
        C{readConnectionLost} and then C{connectionLost}.  (Without
        C{IHalfCloseableProtocol}, Twisted closes at the FIN and the replies
        still in the server's write buffer are lost.)
        """
        message = b"abcdefghijklmnopqrstuvwxyz012345" * 32768
        peer = yield self.connect(Peer())
        peer.transport.write(message)
        peer.transport.loseWriteConnection()
        clientSide = yield peer.lost
        serverSide = yield self.factory.lost
        self.assertEqual(len(peer.receivedAtFin or b""), len(message))
        self.assertEqual(peer.receivedAtFin, message.upper())
        self.assertIs(clientSide, ConnectionDone)
        self.assertIs(serverSide, ConnectionDone)
        self.assertEqual(self.factory.eventNames()[-2:], ["readConnectionLost", "connectionLost"])

    @inlineCallbacks
    def test_clientCloseIsConnectionLost(self) -> Any:
        """
        Step 4, the close, as our client does it after its last reply: a
        full close (C{loseConnection}), not a half-close.  The client's
        C{connectionLost} runs with L{ConnectionDone} as soon as its FIN is
        out, before the server has even seen that FIN; the server then sees
        the FIN as C{readConnectionLost}, closes its side, and gets
        C{connectionLost} with L{ConnectionDone}, logged as a clean close.
        """
        client = RecordingClientProtocol(self.factory, count=2, interval=0)
        yield self.connect(client)
        result = yield client.done
        self.assertIsNone(result)
        self.assertEqual(client.verified, 2)
        self.assertIs(client.lostReason, ConnectionDone)
        self.assertEqual(client.serverSawAtLoss, ["connectionMade", "dataReceived"])
        serverSide = yield self.factory.lost
        self.assertIs(serverSide, ConnectionDone)
        self.assertEqual(
            self.factory.eventNames(),
            ["connectionMade", "dataReceived", "readConnectionLost", "connectionLost"],
        )
        self.assertTrue(self.logged[-1].endswith(" closed (12 bytes received)"), self.logged)

    @inlineCallbacks
    def test_resetIsConnectionLostNotDone(self) -> Any:
        """
        Step 5, a reset: a client that aborts (its socket closed with
        C{SO_LINGER} 0, so a RST and no FIN) makes the server's
        C{connectionLost} get L{ConnectionLost}, not L{ConnectionDone}; the
        server logs the loss with its reason and forgets the connection.
        """
        peer = yield self.connect(Peer())
        peer.transport.write(b"x\n")
        yield peer.got
        peer.transport.abortConnection()
        serverSide = yield self.factory.lost
        self.assertTrue(issubclass(serverSide, ConnectionLost), serverSide)
        self.assertNotIn("readConnectionLost", self.factory.eventNames())
        self.assertRegex(
            self.logged[-1],
            r"^Connection from 127\.0\.0\.1:\d+ lost: .*non-clean fashion.* \(2 bytes received\)$",
        )
        self.assertEqual(self.factory.connections, set())

    @inlineCallbacks
    def test_refusedIsAFailedConnect(self) -> Any:
        """
        Step 6, nothing listening: the installed C{uppercase-client}, sent a
        RST for its SYN, says C{cannot connect to ...: Connection refused}
        in one line on standard error, after its summary (nothing sent) on
        standard output, and exits 1.
        """
        portNumber = portOf(self.port)
        yield self.port.stopListening()
        endpoint = f"tcp:127.0.0.1:{portNumber}"
        [command, *_] = script("uppercase-client")
        out, err, code = yield getProcessOutputAndValue(
            command, ["-c", endpoint], env=dict(os.environ)
        )
        expected = f"uppercase-client: cannot connect to {endpoint}: Connection refused\n"
        self.assertEqual(
            (out, err.decode(), code), (b"0 sent, 0 received, 0 verified\n", expected, 1)
        )
        self.assertEqual(self.factory.events, [])
