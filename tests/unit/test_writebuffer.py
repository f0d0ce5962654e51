"""
Sending at once when nothing is queued (uppercase/_writebuffer.py).

Half-close, flow control and slow readers with the fast path on are covered
by the real-process tests in test_integration.py and test_robustness.py;
these tests pin down when it applies and that byte order survives a full
socket buffer.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from uppercase._writebuffer import DIRECT_LIMIT, canWriteDirectly, writeDirectly


class FallbackTests(SynchronousTestCase):
    """
    Transports whose buffer we cannot see get plain C{transport.write}.
    """

    def test_otherTransport(self) -> None:
        """
        A test transport (or TLS, or a wrapper) is not written to directly.
        """
        self.assertFalse(canWriteDirectly(StringTransport()))


class FakeSocket:
    def __init__(self, takes: int) -> None:
        self.takes = takes
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> int:
        self.sent.append(data[: self.takes])
        return min(len(data), self.takes)


class FakeConnection:
    """
    The parts of a Twisted TCP transport that L{writeDirectly} reads.
    """

    _tempDataLen = 0
    dataBuffer = b""
    disconnecting = _writeDisconnecting = _writeDisconnected = False

    def __init__(self, takes: int = 1 << 30) -> None:
        self.socket = FakeSocket(takes)
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


class WhenToSendAtOnceTests(SynchronousTestCase):
    """
    L{writeDirectly} sends at once only a chunk of up to L{DIRECT_LIMIT}
    bytes with nothing queued before it, and queues what the kernel did not
    take.
    """

    def test_smallChunkSentAtOnce(self) -> None:
        transport = FakeConnection()
        writeDirectly(transport, b"x" * DIRECT_LIMIT)
        self.assertEqual((transport.socket.sent, transport.written), ([b"x" * DIRECT_LIMIT], []))

    def test_restQueued(self) -> None:
        transport = FakeConnection(takes=3)
        writeDirectly(transport, b"abcdef")
        self.assertEqual((transport.socket.sent, transport.written), ([b"abc"], [b"def"]))

    def test_bigChunkQueued(self) -> None:
        """
        A chunk over the limit (a stream) goes through Twisted's buffer.
        """
        transport = FakeConnection()
        writeDirectly(transport, b"y" * (DIRECT_LIMIT + 1))
        self.assertEqual(
            (transport.socket.sent, transport.written), ([], [b"y" * (DIRECT_LIMIT + 1)])
        )

    def test_queuedBefore(self) -> None:
        for attribute, value in [
            ("_tempDataLen", 1),
            ("dataBuffer", b"q"),
            ("disconnecting", True),
            ("_writeDisconnecting", True),
            ("_writeDisconnected", True),
        ]:
            transport = FakeConnection()
            setattr(transport, attribute, value)
            writeDirectly(transport, b"z")
            self.assertEqual((transport.socket.sent, transport.written), ([], [b"z"]), attribute)


class Writer(Protocol):
    """
    Writes through L{writeDirectly} when connected, and records what the
    transport had queued after each write.
    """

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.queuedAfter: list[int] = []

    def connectionMade(self) -> None:
        assert canWriteDirectly(self.transport)
        for chunk in self.chunks:
            writeDirectly(self.transport, chunk)
            self.queuedAfter.append(self.transport._tempDataLen)  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]


class Reader(Protocol):
    def __init__(self) -> None:
        self.data = bytearray()
        self.done: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Any = None) -> None:
        self.done.callback(bytes(self.data))


class OrderTests(TestCase):
    """
    On a real TCP connection, small writes go out at once, and a write that
    does not fit is queued with everything after it, in order.
    """

    @inlineCallbacks
    def test_orderAcrossAFullBuffer(self) -> Any:
        """
        A small write leaves nothing queued (it was sent at once); 16 MiB
        are queued (big chunks go through Twisted's buffer, and overflow the
        socket's); the small writes after it are queued behind; the reader
        gets every byte in order.
        """
        chunks = [b"first"] + [bytes([i]) * (1024 * 1024) for i in range(16)] + [b"last"]
        writer = Writer(chunks)
        port = reactor.listenTCP(0, Factory.forProtocol(lambda: writer), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        reader = Reader()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        yield connectProtocol(endpoint, reader)
        received = yield reader.done
        self.assertEqual(writer.queuedAfter[0], 0)
        self.assertGreater(writer.queuedAfter[-1], len(b"last"))
        self.assertTrue(received == b"".join(chunks), "bytes out of order or lost")
