"""Specification of the server protocol and factory, driven in memory."""

from __future__ import annotations

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from uppercase.server import PREVIEW_BYTES, UppercaseFactory, UppercaseProtocol, preview

from ._transports import BufferingTransport, ascii_upper


def connect(
    factory: UppercaseFactory, host: str = "192.0.2.7", port: int = 40000
) -> tuple[UppercaseProtocol, BufferingTransport]:
    """
    Accept one connection from C{host}:C{port} on C{factory}.
    """
    protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
    assert protocol is not None
    transport = BufferingTransport(host, port)
    protocol.makeConnection(transport)
    return protocol, transport  # type: ignore[return-value]


def quietFactory(clock: Clock, **kwargs: object) -> UppercaseFactory:
    kwargs.setdefault("logData", False)
    return UppercaseFactory(clock=clock, **kwargs)  # type: ignore[arg-type]


class EchoTests(SynchronousTestCase):
    """
    Every byte comes back, ASCII-uppercased, whatever the chunking.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.protocol, self.transport = connect(quietFactory(self.clock))

    def test_lowercaseBecomesUppercase(self) -> None:
        """
        C{hello\\n} comes back as C{HELLO\\n}.
        """
        self.protocol.dataReceived(b"hello\n")
        self.assertEqual(self.transport.value(), b"HELLO\n")

    def test_allByteValues(self) -> None:
        """
        Only C{a}-C{z} change; the 230 other byte values, including
        non-ASCII letters of Latin-1 and UTF-8, come back unchanged.
        """
        everything = bytes(range(256))
        self.protocol.dataReceived(everything)
        out = self.transport.value()
        self.assertEqual(len(out), 256)
        for value in range(256):
            expected = value - 32 if ord("a") <= value <= ord("z") else value
            self.assertEqual(out[value], expected, f"byte {value}")

    def test_fragmentedInput(self) -> None:
        """
        Input delivered one byte at a time produces the same output as
        input delivered at once: nothing is held back or reordered.
        """
        data = b"Mixed CASE \x00\xff\xe9t\xc3\xa9 text\r\n" * 3
        for i in range(len(data)):
            self.protocol.dataReceived(data[i : i + 1])
            self.assertEqual(self.transport.value(), ascii_upper(data[: i + 1]))

    def test_utf8NotDecoded(self) -> None:
        """
        Multi-byte UTF-8 split across chunks is passed through byte for byte,
        never decoded (C{é} stays C{é}, it does not become C{É}).
        """
        data = "café".encode()
        self.protocol.dataReceived(data[:4])
        self.protocol.dataReceived(data[4:])
        self.assertEqual(self.transport.value(), b"CAF" + "é".encode())


class FlowControlTests(SynchronousTestCase):
    """
    The transport's write buffer throttles its reads.
    """

    def setUp(self) -> None:
        self.protocol, self.transport = connect(quietFactory(Clock()))

    def test_registersStreamingProducer(self) -> None:
        """
        On connect, a streaming producer is registered on the transport, so
        that a full write buffer pauses reading.
        """
        self.assertIs(self.transport.producer, self.protocol)
        self.assertTrue(self.transport.streaming)

    def test_fullBufferPausesReading(self) -> None:
        """
        When the transport says its buffer is full, reading from that same
        transport pauses; when it drained, reading resumes and the drain is
        counted as activity.
        """
        throttle = self.transport.producer
        throttle.pauseProducing()
        self.assertEqual(self.transport.producerState, "paused")
        throttle.resumeProducing()
        self.assertEqual(self.transport.producerState, "producing")
        self.assertEqual(self.protocol.drains, 1)


class HalfCloseTests(SynchronousTestCase):
    """
    When the peer shuts down its sending side, everything owed is sent and
    then the connection closes.
    """

    def test_readConnectionLostClosesAfterReplies(self) -> None:
        """
        After the peer's EOF the producer is unregistered (so that the
        transport can close once its buffer is flushed) and the connection
        is closed gracefully, with every reply already written.
        """
        protocol, transport = connect(quietFactory(Clock()))
        protocol.dataReceived(b"hello\n")
        protocol.readConnectionLost()
        self.assertEqual(transport.value(), b"HELLO\n")
        self.assertIsNone(transport.producer)
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected, "aborted instead of closed")

    def test_providesHalfCloseableProtocol(self) -> None:
        """
        The protocol declares L{IHalfCloseableProtocol}; without it Twisted
        closes the connection at the peer's EOF and drops unsent replies.
        """
        from twisted.internet.interfaces import IHalfCloseableProtocol

        self.assertTrue(IHalfCloseableProtocol.providedBy(UppercaseProtocol()))


class LoggingTests(SynchronousTestCase):
    """
    Connections, chunks and disconnects are logged as events with fields.
    """

    def test_connectionLoggedWithHostAndPort(self) -> None:
        """
        A new connection is logged with the client's IP and port.
        """
        with capturedLogs() as events:
            connect(quietFactory(Clock()), "198.51.100.4", 5555)
        [event] = [e for e in events if "Connection from" in e["log_format"]]
        self.assertEqual((event["host"], event["port"]), ("198.51.100.4", 5555))

    def test_ipv6PeerFormatted(self) -> None:
        """
        An IPv6 peer is shown in brackets with its port.
        """
        factory = quietFactory(Clock())
        protocol = factory.buildProtocol(IPv6Address("TCP", "::1", 6000))
        transport = BufferingTransport()
        transport.peerAddr = IPv6Address("TCP", "::1", 6000)
        with capturedLogs() as events:
            protocol.makeConnection(transport)
        self.assertEqual(events[0]["peer"], "[::1]:6000")

    def test_chunksLoggedWithSizeAndPreview(self) -> None:
        """
        Each received chunk is logged with its size and a truncated repr.
        """
        protocol, _ = connect(UppercaseFactory(clock=Clock(), logData=True))
        data = b"x" * (PREVIEW_BYTES + 10)
        with capturedLogs() as events:
            protocol.dataReceived(data)
        [event] = events
        self.assertEqual(event["size"], len(data))
        self.assertEqual(event["data"], repr(b"x" * PREVIEW_BYTES) + "...")

    def test_quietLogsNoChunks(self) -> None:
        """
        With C{logData=False} (C{--quiet}) no event is emitted per chunk.
        """
        protocol, _ = connect(quietFactory(Clock()))
        with capturedLogs() as events:
            protocol.dataReceived(b"hello\n")
        self.assertEqual(list(events), [])

    def test_cleanCloseLoggedAtInfo(self) -> None:
        """
        A clean close is logged at info level with the bytes received.
        """
        protocol, _ = connect(quietFactory(Clock()))
        protocol.dataReceived(b"abc")
        with capturedLogs() as events:
            protocol.connectionLost(Failure(ConnectionDone()))
        [event] = events
        self.assertEqual(event["log_level"], LogLevel.info)
        self.assertEqual(event["received"], 3)

    def test_abnormalCloseLoggedWithReason(self) -> None:
        """
        A lost connection (a reset, say) is logged as lost, with the reason.
        """
        protocol, _ = connect(quietFactory(Clock()))
        with capturedLogs() as events:
            protocol.connectionLost(Failure(ConnectionLost("reset by peer")))
        [event] = events
        self.assertIn("lost", event["log_format"])
        self.assertIn("reset by peer", event["reason"])

    def test_previewShortChunkWhole(self) -> None:
        """
        A chunk shorter than the preview is shown whole.
        """
        self.assertEqual(preview(b"hi\x00"), repr(b"hi\x00"))


class IdleTimeoutTests(SynchronousTestCase):
    """
    A connection that receives nothing for the idle timeout is closed; an
    active one never is.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.factory = quietFactory(self.clock, idleTimeout=100.0)
        self.protocol, self.transport = connect(self.factory)

    def wait(self, seconds: int) -> None:
        """
        Let C{seconds} pass one at a time, as a real reactor would.
        """
        self.clock.pump([1] * seconds)

    def test_silentConnectionClosed(self) -> None:
        """
        A silent connection is still open just before the timeout, and is
        closed (gracefully, since it owes nothing) at most a quarter of the
        timeout after it.
        """
        self.wait(99)
        self.assertFalse(self.transport.disconnecting)
        self.wait(26)
        self.assertTrue(self.transport.disconnecting)
        self.assertFalse(self.transport.disconnected)
        self.assertEqual(self.factory.idleClosed, 1)

    def test_activeConnectionKept(self) -> None:
        """
        A connection that sends something every 90 seconds is never closed.
        """
        for _ in range(20):
            self.wait(90)
            self.protocol.dataReceived(b"ping")
            self.transport.flushToKernel()
        self.assertFalse(self.transport.disconnecting)

    def test_idleMeasuredFromLastData(self) -> None:
        """
        After the last data, the connection lives at least the full timeout.
        """
        self.wait(60)
        self.protocol.dataReceived(b"late")
        self.transport.flushToKernel()
        self.wait(99)
        self.assertFalse(self.transport.disconnecting)
        self.wait(30)
        self.assertTrue(self.transport.disconnecting)

    def test_idlePeerThatOwesReadsIsAborted(self) -> None:
        """
        A peer that neither sends nor reads what it is owed is aborted:
        waiting for the buffer to drain would wait forever.
        """
        self.protocol.dataReceived(b"unread")
        self.wait(300)
        self.assertTrue(self.transport.disconnected)

    def test_noTimerLeftAfterClose(self) -> None:
        """
        Closing the connection cancels its idle check.
        """
        self.protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_zeroDisables(self) -> None:
        """
        An idle timeout of 0 schedules nothing.
        """
        clock = Clock()
        connect(quietFactory(clock, idleTimeout=0))
        self.assertEqual(clock.getDelayedCalls(), [])


class LimitTests(SynchronousTestCase):
    """
    Over a connection limit, new connections are refused (closed at once),
    logged and counted; capacity comes back as others close.
    """

    def test_maxConnections(self) -> None:
        """
        The connection past C{maxConnections} is refused; after one closes,
        a new one is accepted.
        """
        factory = quietFactory(Clock(), maxConnections=2)
        first, _ = connect(factory, port=1)
        connect(factory, port=2)
        with capturedLogs() as events:
            refused = factory.buildProtocol(IPv4Address("TCP", "192.0.2.7", 3))
        self.assertIsNone(refused)
        self.assertEqual(factory.rejected, 1)
        self.assertIn("connections already open", events[0]["reason"])
        first.connectionLost(Failure(ConnectionDone()))
        self.assertIsNotNone(factory.buildProtocol(IPv4Address("TCP", "192.0.2.7", 4)))

    def test_maxPerIP(self) -> None:
        """
        C{maxPerIP} limits connections from one host and not from others.
        The check is made once connected, on the transport's peer address
        (the client's, even behind a PROXY-protocol load balancer): an
        extra connection is closed at once, echoes nothing and is not
        counted as open.
        """
        factory = quietFactory(Clock(), maxPerIP=1)
        connect(factory, host="192.0.2.1")
        extra, extraTransport = connect(factory, host="192.0.2.1", port=2)
        self.assertTrue(extraTransport.disconnecting)
        extra.dataReceived(b"ignored")
        self.assertEqual(extraTransport.value(), b"")
        extra.connectionLost(Failure(ConnectionDone()))
        other, otherTransport = connect(factory, host="192.0.2.2")
        self.assertFalse(otherTransport.disconnecting)
        self.assertEqual(len(factory.connections), 2)
        self.assertEqual(factory.rejected, 1)

    def test_refusalsLoggedOncePerBurst(self) -> None:
        """
        A burst of refusals logs the first at once and the rest as one
        summary a second later; once the burst is over nothing stays
        scheduled.
        """
        clock = Clock()
        factory = quietFactory(clock, maxConnections=1, idleTimeout=0)
        connect(factory)
        with capturedLogs() as events:
            for port in range(100):
                factory.buildProtocol(IPv4Address("TCP", "192.0.2.9", port))
            self.assertEqual(len(events), 1)
            clock.advance(1)
            self.assertEqual(len(events), 2)
            self.assertEqual(events[1]["count"], 99)
            clock.advance(1)
        self.assertEqual(len(events), 2)
        self.assertEqual(factory.rejected, 100)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_unlimited(self) -> None:
        """
        With both limits 0, any number of connections is accepted.
        """
        factory = quietFactory(Clock(), maxConnections=0, maxPerIP=0)
        for port in range(1, 200):
            connect(factory, port=port)
        self.assertEqual(len(factory.connections), 199)
        self.assertEqual(factory.rejected, 0)


class ShutdownTests(SynchronousTestCase):
    """
    A graceful shutdown delivers what was read, ends the stream with FIN,
    discards what still arrives, and aborts what is left at the deadline.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.factory = quietFactory(self.clock)

    def test_noConnectionsFiresAtOnce(self) -> None:
        """
        With nothing open, the shutdown is done at once.
        """
        self.successResultOf(self.factory.shutdown(10))

    def test_idleConnectionClosed(self) -> None:
        """
        A connection that owes nothing is closed right away.
        """
        protocol, transport = connect(self.factory)
        self.factory.shutdown(10)
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.writeDisconnecting)

    def test_owingConnectionHalfClosed(self) -> None:
        """
        A connection that still owes replies is half-closed (FIN after the
        replies), keeps reading, and discards what arrives.
        """
        protocol, transport = connect(self.factory)
        protocol.dataReceived(b"owed")
        d = self.factory.shutdown(10)
        self.assertTrue(transport.writeDisconnecting)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(transport.producerState, "producing")
        protocol.dataReceived(b"discarded")
        self.assertEqual(transport.value(), b"OWED")
        self.assertNoResult(d)
        protocol.readConnectionLost()
        protocol.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(d)

    def test_refusesNewConnections(self) -> None:
        """
        Once shutting down, new connections are refused.
        """
        self.factory.shutdown(10)
        self.assertIsNone(self.factory.buildProtocol(IPv4Address("TCP", "192.0.2.7", 1)))

    def test_deadlineAborts(self) -> None:
        """
        Connections still open at the deadline are aborted, and the deadline
        is not left scheduled afterwards.
        """
        protocol, transport = connect(self.factory)
        protocol.dataReceived(b"owed")
        d = self.factory.shutdown(10)
        self.clock.advance(9.9)
        self.assertFalse(transport.disconnected)
        self.clock.advance(0.1)
        self.assertTrue(transport.disconnected)
        protocol.connectionLost(Failure(ConnectionLost()))
        self.successResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])
