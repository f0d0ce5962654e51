"""
The one module that reads Twisted's private write-buffer fields: what it
does with Twisted's real TCP transport class (over a socketpair, with no
reactor running), and its fallback when the fields are not there.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.tcp import Connection
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import alsoProvides

from uppercase import _transport
from uppercase._transport import (
    DIRECT_LIMIT,
    canHalfClose,
    directWriteTarget,
    pendingBytes,
    splice,
    writeDirectly,
)
from uppercase.echo import UppercaseProtocol
from uppercase.testing import StreamTransport


def socketTransport(
    case: SynchronousTestCase, protocol: Any = None
) -> tuple[Connection, socket.socket]:
    """
    Twisted's TCP transport class on one end of a socketpair (on a memory
    reactor), and the other end.
    """
    ours, theirs = socket.socketpair()
    case.addCleanup(ours.close)
    case.addCleanup(theirs.close)
    theirs.settimeout(5)
    transport = Connection(ours, protocol, reactor=MemoryReactorClock())
    transport.connected = True
    return transport, theirs


def readAll(peer: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        data += peer.recv(size - len(data))
    return data


class DirectWriteTests(SynchronousTestCase):
    """
    Small replies go straight to the socket when nothing is queued before
    them; anything else goes through Twisted's buffer, in order.
    """

    def test_supported(self) -> None:
        """
        Twisted's own socket transport supports direct writes; other
        transports, and TLS, do not.
        """
        transport, _ = socketTransport(self)
        self.assertIs(directWriteTarget(transport), transport)
        self.assertIsNone(directWriteTarget(StringTransport()))
        alsoProvides(transport, ISSLTransport)
        self.assertIsNone(directWriteTarget(transport))

    def test_standIn(self) -> None:
        """
        A transport that stands for a socket transport (the PROXY protocol's)
        writes directly to it.
        """
        from twisted.internet.address import IPv4Address

        from uppercase.proxy import ProxiedTransport

        transport, _ = socketTransport(self)
        address = IPv4Address("TCP", "203.0.113.9", 5)
        self.assertIs(directWriteTarget(ProxiedTransport(transport, address, address)), transport)

    def test_smallChunkSentAtOnce(self) -> None:
        """
        With nothing queued, a small chunk is on the socket at once and
        nothing is left in Twisted's buffer.
        """
        transport, peer = socketTransport(self)
        writeDirectly(transport, b"hello")
        self.assertEqual(pendingBytes(transport), 0)
        self.assertEqual(readAll(peer, 5), b"hello")

    def test_bigChunkBuffered(self) -> None:
        """
        A chunk over L{DIRECT_LIMIT} goes through Twisted's buffer.
        """
        transport, _ = socketTransport(self)
        writeDirectly(transport, b"x" * (DIRECT_LIMIT + 1))
        self.assertEqual(pendingBytes(transport), DIRECT_LIMIT + 1)

    def test_queuedFirstKeepsOrder(self) -> None:
        """
        While anything is queued, a small chunk is queued behind it: the
        peer gets both in order once the buffer is written.
        """
        transport, peer = socketTransport(self)
        transport.write(b"first ")
        writeDirectly(transport, b"second")
        self.assertEqual(pendingBytes(transport), 12)
        transport.doWrite()
        self.assertEqual(readAll(peer, 12), b"first second")


class Lost(Protocol):
    """
    Keeps the reason its connection was lost for.
    """

    reason: Failure | None = None

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.reason = reason


class SendErrorTests(SynchronousTestCase):
    """
    A direct send that meets the peer's reset ends the connection with
    it, as Twisted's own failed send does.
    """

    def test_resetMetBySendIsReported(self) -> None:
        """
        Over real TCP (loopback, a port the kernel picks), the peer resets:
        the direct send gets the reset, and the connection is then lost
        with L{ConnectionLost} (not the L{ConnectionDone} a read of the
        reset socket would give once the send has taken its error).
        """
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        ours = socket.create_connection(listener.getsockname(), timeout=5)
        theirs, _ = listener.accept()
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        theirs.close()  # a reset, in by the time close() returns on loopback
        ours.setblocking(False)
        reactor = MemoryReactorClock()
        protocol = Lost()
        transport = Connection(ours, protocol, reactor=reactor)
        transport.connected = True
        protocol.makeConnection(transport)
        writeDirectly(transport, b"hello")
        reactor.advance(0)
        assert protocol.reason is not None
        self.assertTrue(protocol.reason.check(ConnectionLost), protocol.reason)
        self.assertFalse(protocol.reason.check(ConnectionDone), protocol.reason)


class FallbackTests(SynchronousTestCase):
    """
    If Twisted's buffer fields are not where this module looks (a future
    Twisted renamed them), it says so once and uses the public API.
    """

    def setUp(self) -> None:
        self.patch(_transport, "BUFFER_FIELDS", (*_transport.BUFFER_FIELDS, "_renamedInFuture"))
        self.patch(_transport, "_checked", {})

    def test_oneWarningThenPublicAPI(self) -> None:
        """
        The first transport of the class logs one warning naming what is
        missing; no transport then writes directly or reports pending
        bytes.
        """
        with capturedLogs() as events:
            first, _ = socketTransport(self)
            second, _ = socketTransport(self)
            self.assertIsNone(directWriteTarget(first))
            self.assertIsNone(directWriteTarget(second))
            self.assertIsNone(pendingBytes(second))
        [warning] = events
        self.assertIn("_renamedInFuture", warning["missing"])

    def test_echoStillWorks(self) -> None:
        """
        The echo on such a transport still echoes, through
        C{transport.write}.
        """
        protocol = Factory.forProtocol(UppercaseProtocol).buildProtocol(None)
        assert protocol is not None
        with capturedLogs():
            transport, peer = socketTransport(self, protocol)
            protocol.makeConnection(transport)
            protocol.dataReceived(b"still fine")
        transport.doWrite()
        self.assertEqual(readAll(peer, 10), b"STILL FINE")


class SpliceTests(SynchronousTestCase):
    """
    A socket transport can be handed to another protocol.
    """

    def test_splice(self) -> None:
        """
        After L{splice}, the socket transport delivers to the new protocol;
        a transport of another kind is left alone (L{False}).
        """
        first = Factory.forProtocol(UppercaseProtocol).buildProtocol(None)
        second = Factory.forProtocol(UppercaseProtocol).buildProtocol(None)
        transport, _ = socketTransport(self, first)
        self.assertTrue(splice(transport, second))
        self.assertIs(transport.protocol, second)
        self.assertFalse(splice(StringTransport(), second))


class InterfaceTests(SynchronousTestCase):
    """
    How a transport may be closed is decided by its interfaces.
    """

    def test_canHalfClose(self) -> None:
        """
        A TCP-like transport can half-close; the same transport declaring
        TLS cannot; a transport without the TCP interfaces cannot.
        """
        tcp = StreamTransport()
        self.assertTrue(canHalfClose(tcp))
        self.assertFalse(canHalfClose(StringTransport()))
        alsoProvides(tcp, ISSLTransport)
        self.assertFalse(canHalfClose(tcp))

    def test_pendingBytesOfOthers(self) -> None:
        """
        A transport that reports its pending bytes publicly is asked; one
        that cannot say gives L{None}.
        """
        transport = StreamTransport(peerReads=False)
        transport.write(b"abc")
        self.assertEqual(pendingBytes(transport), 3)
        self.assertIsNone(pendingBytes(StringTransport()))
