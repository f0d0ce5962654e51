"""
The one module that reads Twisted's private write-buffer fields: what it
does with Twisted's real TCP transport class (over a socketpair, with no
reactor running), its fallback when the fields are not there, and how other
transports take part through the declared interfaces
(L{uppercase.net.interfaces}).
"""

from __future__ import annotations

import select
import socket
import struct
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import Clock
from twisted.internet.tcp import Connection
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import alsoProvides, implementer
from zope.interface.verify import verifyObject

from uppercase.echo import UppercaseProtocol
from uppercase.net import transport as transportModule
from uppercase.net.interfaces import IDirectWrite, IDirectWriteTarget, IPendingBytes
from uppercase.net.transport import (
    DIRECT_LIMIT,
    canHalfClose,
    datagramSender,
    directWriter,
    directWriteTarget,
    pendingBytes,
    splice,
    writeDirectly,
)
from uppercase.proxy import ProxiedTransport
from uppercase.server import UppercaseFactory
from uppercase.testing import StreamTransport

ADDRESS = IPv4Address("TCP", "203.0.113.9", 5)


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
        A transport that stands for a socket transport (the PROXY protocol's,
        an L{IDirectWriteTarget}) writes directly to it.
        """
        transport, _ = socketTransport(self)
        proxied = ProxiedTransport(transport, ADDRESS, ADDRESS)
        self.assertTrue(verifyObject(IDirectWriteTarget, proxied))
        self.assertIs(directWriteTarget(proxied), transport)

    def test_undeclaredStandInIgnored(self) -> None:
        """
        A transport with a C{directWriteTarget} method that does not declare
        L{IDirectWriteTarget} is not looked through: extensions are
        declared, not guessed from method names.
        """
        transport, _ = socketTransport(self)

        class Undeclared(StringTransport):
            def directWriteTarget(self) -> object:
                return transport

        self.assertIsNone(directWriteTarget(Undeclared()))

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


class DirectWriterTests(SynchronousTestCase):
    """
    L{directWriter}: the write a protocol chooses once per connection, the
    quickest that keeps C{write}'s order, flow control and half-close.
    """

    def test_socketTransport(self) -> None:
        """
        On Twisted's socket transport, a small chunk is on the socket at
        once, with nothing left in Twisted's buffer.
        """
        transport, peer = socketTransport(self)
        directWriter(transport)(b"hello")
        self.assertEqual(pendingBytes(transport), 0)
        self.assertEqual(readAll(peer, 5), b"hello")

    def test_standIn(self) -> None:
        """
        Through the PROXY protocol's transport, the chunk goes straight to
        the socket transport it stands for.
        """
        transport, peer = socketTransport(self)
        proxied: Any = ProxiedTransport(transport, ADDRESS, ADDRESS)
        directWriter(proxied)(b"proxied")
        self.assertEqual(pendingBytes(transport), 0)
        self.assertEqual(readAll(peer, 7), b"proxied")

    def test_declaredDirectWrite(self) -> None:
        """
        A transport that provides L{IDirectWrite} writes with its own
        C{writeDirectly}.
        """
        calls: list[bytes] = []

        @implementer(IDirectWrite)
        class Direct(StringTransport):
            def writeDirectly(self, data: bytes) -> None:
                calls.append(data)

        directWriter(Direct())(b"mine")
        self.assertEqual(calls, [b"mine"])

    def test_inMemory(self) -> None:
        """
        L{StreamTransport} provides L{IDirectWrite}: its writes are already
        immediate, so the chunk is written, and taken by a reading peer.
        """
        transport = StreamTransport()
        directWriter(transport)(b"in memory")
        self.assertEqual(transport.value(), b"in memory")
        self.assertEqual(transport.pendingBytes(), 0)

    def test_othersWrite(self) -> None:
        """
        Any other transport, and TLS on a socket transport, gets its own
        C{write}: the bytes wait in its buffer as C{write} leaves them.
        """
        plain = StringTransport()
        self.assertEqual(directWriter(plain), plain.write)
        transport, _ = socketTransport(self)
        alsoProvides(transport, ISSLTransport)
        write = directWriter(transport)
        self.assertEqual(write, transport.write)
        write(b"tls")
        self.assertEqual(transportModule._pendingOf(transport), 3)


class WhoWritesDirectlyTests(SynchronousTestCase):
    """
    The direct write is the server's choice, not the echo's: the echo
    protocol writes with C{transport.write}; the server's protocol with
    what L{directWriter} chose.
    """

    def test_echoWrites(self) -> None:
        """
        The echo alone, on Twisted's socket transport, leaves its reply in
        Twisted's buffer until the reactor writes it.
        """
        protocol = Factory.forProtocol(UppercaseProtocol).buildProtocol(None)
        assert protocol is not None
        transport, peer = socketTransport(self, protocol)
        protocol.makeConnection(transport)
        protocol.dataReceived(b"hello")
        self.assertEqual(pendingBytes(transport), 5)
        transport.doWrite()
        self.assertEqual(readAll(peer, 5), b"HELLO")

    def test_serverWritesDirectly(self) -> None:
        """
        The server's protocol, on the same transport, puts its reply on the
        socket at once.
        """
        protocol = UppercaseFactory(Clock(), logData=False).buildProtocol(None)
        assert protocol is not None
        transport, peer = socketTransport(self, protocol)
        with capturedLogs():
            protocol.makeConnection(transport)
            protocol.dataReceived(b"hello")
        self.assertEqual(pendingBytes(transport), 0)
        self.assertEqual(readAll(peer, 5), b"HELLO")

    def test_echoImportsNoPrivateFieldCode(self) -> None:
        """
        The echo layer does not import the module that reads Twisted's
        private fields.
        """
        import subprocess
        import sys

        code = "import sys, uppercase.echo; print('uppercase.net.transport' in sys.modules)"
        output = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        self.assertEqual(output.strip(), "False")


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
        self.patch(
            transportModule, "BUFFER_FIELDS", (*transportModule.BUFFER_FIELDS, "_renamedInFuture")
        )
        self.patch(transportModule, "_checked", {})

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
            self.assertEqual(directWriter(second), second.write)
        [warning] = events
        self.assertIn("_renamedInFuture", warning["missing"])

    def test_echoStillWorks(self) -> None:
        """
        The echo, and the server's protocol, on such a transport still echo,
        through C{transport.write}.
        """
        for factory in (
            Factory.forProtocol(UppercaseProtocol),
            UppercaseFactory(Clock(), logData=False),
        ):
            protocol = factory.buildProtocol(None)
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
        A transport that provides L{IPendingBytes} is asked; one that cannot
        say gives L{None}.
        """
        transport = StreamTransport(peerReads=False)
        transport.write(b"abc")
        self.assertEqual(pendingBytes(transport), 3)
        self.assertIsNone(pendingBytes(StringTransport()))

    def test_pendingBytesUndeclared(self) -> None:
        """
        A C{pendingBytes} method alone, without L{IPendingBytes}, is not
        asked: the extension is declared, not guessed from a method name.
        """

        class Undeclared(StringTransport):
            def pendingBytes(self) -> int:
                return 7

        self.assertIsNone(pendingBytes(Undeclared()))

    def test_pendingBytesThroughStandIns(self) -> None:
        """
        The PROXY protocol's transport provides L{IPendingBytes}, and says
        what the socket transport it stands for holds.
        """
        transport, _ = socketTransport(self)
        proxied: Any = ProxiedTransport(transport, ADDRESS, ADDRESS)
        self.assertTrue(verifyObject(IPendingBytes, proxied))
        transport.write(b"queued")
        self.assertEqual(pendingBytes(proxied), 6)


class HalfClosingTLSTests(SynchronousTestCase):
    """
    L{transportModule.halfClosingTLS}: a subclass of Twisted's TLS protocol, or
    Twisted's own (with one warning) when a piece it uses has moved.  (What
    the subclass does is in C{unit/server/test_tls.py} C{CloseNotifyTests}.)
    """

    def setUp(self) -> None:
        from tests.process._process import requireTLS

        requireTLS()

    def test_subclass(self) -> None:
        """
        With Twisted's pieces where it expects them, the class is a
        subclass of the protocol Twisted's TLS factory builds.
        """
        from twisted.protocols.tls import TLSMemoryBIOFactory

        tls = transportModule.halfClosingTLS()
        self.assertTrue(issubclass(tls, TLSMemoryBIOFactory.protocol))
        self.assertIsNot(tls, TLSMemoryBIOFactory.protocol)

    def test_fallback(self) -> None:
        """
        A piece missing (a future Twisted's rename): Twisted's own class, and
        one warning that names the piece.
        """
        from twisted.protocols.tls import TLSMemoryBIOFactory

        self.patch(transportModule, "TLS_PIECES", (*transportModule.TLS_PIECES, "_renamedInFuture"))
        with capturedLogs() as events:
            tls = transportModule.halfClosingTLS.__wrapped__()
        self.assertIs(tls, TLSMemoryBIOFactory.protocol)
        [event] = events
        self.assertIn("_renamedInFuture", event["missing"])


def udpPort(case: SynchronousTestCase, protocol: Any) -> Any:
    """
    Twisted's own UDP port, bound to 127.0.0.1 on a memory reactor (no
    reactor runs), with C{protocol} started on it.
    """
    from twisted.internet import udp

    port = udp.Port(0, protocol, "127.0.0.1", 65536, MemoryReactorClock())
    port.startListening()
    case.addCleanup(port.connectionLost)
    return port


def udpPeer(case: SynchronousTestCase) -> socket.socket:
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    case.addCleanup(peer.close)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(5)
    return peer


class DatagramSenderTests(SynchronousTestCase):
    """
    L{datagramSender}: the socket's own C{sendto} for Twisted's UDP port,
    C{transport.write} for anything else.
    """

    def test_socketSendto(self) -> None:
        """
        For Twisted's UDP port (not connected) it is the port socket's
        C{sendto}, and what it sends reaches the address.
        """
        from twisted.internet.protocol import DatagramProtocol

        port = udpPort(self, DatagramProtocol())
        send = datagramSender(port)
        self.assertEqual(send, port.socket.sendto)
        peer = udpPeer(self)
        send(b"direct", peer.getsockname())
        self.assertEqual(peer.recvfrom(100), (b"direct", port.socket.getsockname()))

    def test_connectedPortWrites(self) -> None:
        """
        A connected UDP port is written with C{transport.write} (which
        sends without an address).
        """
        from twisted.internet.protocol import DatagramProtocol

        port = udpPort(self, DatagramProtocol())
        port.connect(*udpPeer(self).getsockname())
        self.assertEqual(datagramSender(port), port.write)

    def test_othersWrite(self) -> None:
        """
        Any other datagram transport is written with its C{write}.
        """
        other = StringTransport()
        self.assertEqual(datagramSender(other), other.write)


class DatagramFallbackTests(SynchronousTestCase):
    """
    If Twisted's UDP port keeps its socket elsewhere (a future Twisted),
    L{datagramSender} says so once and uses C{transport.write}.
    """

    def setUp(self) -> None:
        self.patch(
            transportModule,
            "DATAGRAM_FIELDS",
            (*transportModule.DATAGRAM_FIELDS, "_renamedInFuture"),
        )
        self.patch(transportModule, "_checkedDatagram", {})

    def test_oneWarningThenWrite(self) -> None:
        """
        The first port of the class logs one warning naming what is
        missing; every port is then written with C{transport.write}.
        """
        from twisted.internet.protocol import DatagramProtocol

        with capturedLogs() as events:
            first = udpPort(self, DatagramProtocol())
            second = udpPort(self, DatagramProtocol())
            self.assertEqual(datagramSender(first), first.write)
            self.assertEqual(datagramSender(second), second.write)
        [warning] = [e for e in events if "missing" in e]
        self.assertIn("_renamedInFuture", warning["missing"])

    def test_serverEchoStillWorks(self) -> None:
        """
        The server's datagram echo on such a port still echoes, counted,
        through C{Port.write}.
        """
        from uppercase.server._udp import DatagramServer

        server = DatagramServer(Clock(), logData=False)
        protocol = server.buildProtocol()
        with capturedLogs():
            port = udpPort(self, protocol)
        self.assertEqual(protocol.send, port.write)
        peer = udpPeer(self)
        protocol.datagramReceived(b"still fine", peer.getsockname())
        self.assertEqual(peer.recv(100), b"STILL FINE")
        self.assertEqual(server.counts.sent, 1)


class Received:
    """A datagram protocol that keeps what it receives; C{fail} raises."""

    def __init__(self) -> None:
        self.datagrams: list[tuple[bytes, Any]] = []
        self.fail: BaseException | None = None

    def makeConnection(self, transport: Any) -> None:
        pass

    def doStop(self) -> None:
        pass

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        if self.fail is not None:
            fail, self.fail = self.fail, None
            raise fail
        self.datagrams.append((datagram, addr))


class ReadDatagramsIntoTests(SynchronousTestCase):
    """
    L{readDatagramsInto}: Twisted's UDP port reading into one reused
    buffer, delivering what Twisted's own reading delivers.
    """

    def portAndPeer(self, host: str = "127.0.0.1") -> tuple[Any, Received, socket.socket]:
        from twisted.internet import udp

        protocol = Received()
        port = udp.Port(0, protocol, host, 65536, MemoryReactorClock())
        port.startListening()
        self.addCleanup(port.connectionLost)
        peer = socket.socket(port.addressFamily, socket.SOCK_DGRAM)
        self.addCleanup(peer.close)
        peer.bind((host, 0))
        return port, protocol, peer

    def test_deliversWholeDatagrams(self) -> None:
        """
        Queued datagrams of 0 bytes to 65,507 are delivered whole, in
        order, each with its sender's address, as bytes, and none leaks
        into the next (the buffer is reused); reading stops when the socket
        is empty.
        """
        port, protocol, peer = self.portAndPeer()
        self.assertTrue(transportModule.readDatagramsInto(port, enable=True))
        sent = [b"x" * 100, b"", b"short", b"y" * 65507, b"z"]
        for datagram in sent:
            peer.sendto(datagram, port.socket.getsockname())
        port.doRead()
        self.assertEqual(protocol.datagrams, [(d, peer.getsockname()) for d in sent])
        self.assertEqual({type(d) for d, _ in protocol.datagrams}, {bytes})

    def test_ipv6AddressTrimmed(self) -> None:
        """
        On IPv6, the sender's address is (host, port), as Twisted gives it.
        """
        if not socket.has_ipv6:
            self.skipTest("no IPv6")
        try:
            port, protocol, peer = self.portAndPeer("::1")
        except Exception as e:
            self.skipTest(f"no IPv6 loopback: {e}")
        transportModule.readDatagramsInto(port, enable=True)
        peer.sendto(b"six", port.socket.getsockname())
        port.doRead()
        self.assertEqual(protocol.datagrams, [(b"six", peer.getsockname()[:2])])

    def test_protocolErrorLogged(self) -> None:
        """
        An exception from the protocol is logged and the next datagram is
        still delivered.
        """
        port, protocol, peer = self.portAndPeer()
        transportModule.readDatagramsInto(port, enable=True)
        protocol.fail = ValueError("odd")
        for datagram in (b"first", b"second"):
            peer.sendto(datagram, port.socket.getsockname())
        with capturedLogs() as events:
            port.doRead()
        self.assertEqual([d for d, _ in protocol.datagrams], [b"second"])
        [event] = events
        self.assertIsInstance(event["log_failure"].value, ValueError)
        self.flushLoggedErrors(ValueError)

    def test_refusedToldWhenConnected(self) -> None:
        """
        A refusal the kernel reports on reading is told to a connected
        port's protocol, as Twisted's reading does, and ends the reading.
        """
        port, protocol, peer = self.portAndPeer()
        transportModule.readDatagramsInto(port, enable=True)
        refused: list[bool] = []
        protocol.connectionRefused = lambda: refused.append(True)  # type: ignore[attr-defined]
        gone = peer.getsockname()
        peer.close()
        port.connect(*gone)
        port.write(b"nobody")
        select.select([port.socket], [], [], 5)  # the kernel's ICMP, however busy
        port.doRead()
        self.assertEqual(refused, [True])

    def test_notByDefaultOnCPython(self) -> None:
        """
        Unless told, it is done on PyPy only (where it was measured
        quicker) and never to anything but Twisted's UDP port.
        """
        import platform

        port, _, _ = self.portAndPeer()
        self.assertEqual(
            transportModule.readDatagramsInto(port),
            platform.python_implementation() == "PyPy",
        )
        self.assertFalse(transportModule.readDatagramsInto(StringTransport(), enable=True))

    def test_fallback(self) -> None:
        """
        If Twisted's port lacks what it reads, one warning, and Twisted
        reads as it always did.
        """
        self.patch(
            transportModule,
            "READ_INTO_FIELDS",
            (*transportModule.READ_INTO_FIELDS, "_renamedInFuture"),
        )
        self.patch(transportModule, "_readIntoWarned", set())
        port, protocol, peer = self.portAndPeer()
        second, _, _ = self.portAndPeer()
        with capturedLogs() as events:
            self.assertFalse(transportModule.readDatagramsInto(port, enable=True))
            self.assertFalse(transportModule.readDatagramsInto(second, enable=True))
        [warning] = events
        self.assertIn("_renamedInFuture", warning["missing"])
        self.assertNotIn("doRead", vars(port))
        peer.sendto(b"still", port.socket.getsockname())
        port.doRead()
        self.assertEqual(protocol.datagrams, [(b"still", peer.getsockname())])
