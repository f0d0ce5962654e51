"""Specification of the server's policies on the echo, driven in memory."""

from __future__ import annotations

from typing import Sequence

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.logger import LogEvent, LogLevel, capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from uppercase.echo import UppercaseProtocol
from uppercase.server import PREVIEW_BYTES, ServerProtocol, UppercaseFactory, preview
from uppercase.server import _factory as server
from uppercase.testing import Refused, connectServer


def client(host: str = "192.0.2.7", port: int = 40000) -> IPv4Address:
    return IPv4Address("TCP", host, port)


def quietFactory(clock: Clock, **kwargs: object) -> UppercaseFactory:
    """
    A factory that does not log every chunk (most tests check other events).
    """
    kwargs.setdefault("logData", False)
    return UppercaseFactory(clock, **kwargs)  # type: ignore[arg-type]


class ConstructionTests(SynchronousTestCase):
    """
    The factory is an ordinary Twisted factory, driven by the clock it is
    given.
    """

    def test_buildsServerProtocols(self) -> None:
        """
        C{buildProtocol(None)} gives a L{ServerProtocol}, which is the echo.
        """
        protocol = UppercaseFactory(Clock()).buildProtocol(None)
        self.assertIsInstance(protocol, ServerProtocol)
        self.assertIsInstance(protocol, UppercaseProtocol)

    def test_clockRequired(self) -> None:
        """
        Time is an argument: a factory cannot be built without a clock (and
        so never reaches for the global reactor).
        """
        self.assertRaises(TypeError, UppercaseFactory)

    def test_nothingLeftScheduled(self) -> None:
        """
        After a connection comes and goes, nothing is left on the clock.
        """
        clock = Clock()
        _, transport = connectServer(quietFactory(clock))
        self.assertNotEqual(clock.getDelayedCalls(), [])
        transport.receiveEOF()
        self.assertEqual(clock.getDelayedCalls(), [])


class LoggingTests(SynchronousTestCase):
    """
    Connections, chunks and disconnects are logged as events with fields.
    """

    def test_connectionLoggedWithHostAndPort(self) -> None:
        """
        A new connection is logged with the client's IP and port.
        """
        with capturedLogs() as events:
            connectServer(quietFactory(Clock()), client("198.51.100.4", 5555))
        [event] = events
        self.assertEqual(event["log_format"], "Connection from {host} port {port}")
        self.assertEqual((event["host"], event["port"]), ("198.51.100.4", 5555))

    def test_ipv6PeerFormatted(self) -> None:
        """
        An IPv6 peer is shown in brackets with its port.
        """
        with capturedLogs() as events:
            connectServer(quietFactory(Clock()), IPv6Address("TCP", "::1", 6000))
        self.assertEqual(events[0]["peer"], "[::1]:6000")

    def test_ipv4MappedIsIPv4(self) -> None:
        """
        A client reaching a dual-stack socket over IPv4 (C{::ffff:1.2.3.4})
        is logged with its IPv4 address.
        """
        with capturedLogs() as events:
            connectServer(quietFactory(Clock()), IPv6Address("TCP", "::ffff:203.0.113.5", 7))
        self.assertEqual((events[0]["host"], events[0]["peer"]), ("203.0.113.5", "203.0.113.5:7"))

    def test_unixClient(self) -> None:
        """
        A UNIX-socket client is logged by the socket's path (it has no
        address of its own), without a port.
        """
        peer = UNIXAddress(None)
        with capturedLogs() as events:
            _, transport = connectServer(quietFactory(Clock()), peer, UNIXAddress(b"/run/u.sock"))
            transport.receiveEOF()
        texts = [e["log_format"].format(**e) for e in events]
        self.assertEqual(
            texts,
            [
                "Connection from unix:/run/u.sock",
                "Connection from unix:/run/u.sock closed (0 bytes received)",
            ],
        )

    def test_chunksLoggedWithSizeAndPreview(self) -> None:
        """
        Each received chunk is logged with its size and a truncated repr.
        """
        _, transport = connectServer(UppercaseFactory(Clock(), logData=True))
        data = b"x" * (PREVIEW_BYTES + 10)
        with capturedLogs() as events:
            transport.receive(data)
        [event] = events
        self.assertEqual(event["size"], len(data))
        self.assertEqual(event["data"], repr(b"x" * PREVIEW_BYTES) + "...")

    def test_chunkEventAsLoggerMakesIt(self) -> None:
        """
        The per-chunk event, emitted without C{Logger.emit}, has the same
        fields as C{log.info} would have given it.
        """
        from twisted.logger import ILogObserver, Logger
        from zope.interface import implementer

        events: list[LogEvent] = []
        observer = implementer(ILogObserver)(lambda event: events.append(event))
        self.patch(server, "log", Logger(namespace="uppercase.server", observer=observer))
        _, transport = connectServer(UppercaseFactory(Clock(), logData=True))
        del events[:]
        transport.receive(b"abc")
        server.log.info(server.RECEIVED, size=3, peer="192.0.2.7:40000", data="b'abc'")
        direct, reference = events
        self.assertEqual(set(direct), set(reference))
        for key in reference:
            if key != "log_time":
                self.assertEqual(direct[key], reference[key], key)

    def test_quietLogsNoChunks(self) -> None:
        """
        With C{logData=False} (C{--quiet}) no event is emitted per chunk.
        """
        _, transport = connectServer(quietFactory(Clock()))
        with capturedLogs() as events:
            transport.receive(b"hello\n")
        self.assertEqual(list(events), [])

    def test_cleanCloseLoggedAtInfo(self) -> None:
        """
        A clean close is logged at info level with the bytes received.
        """
        _, transport = connectServer(quietFactory(Clock()))
        transport.receive(b"abc")
        with capturedLogs() as events:
            transport.receiveEOF()
        [event] = events
        self.assertEqual(event["log_level"], LogLevel.info)
        self.assertIn("closed", event["log_format"])
        self.assertEqual((event["received"], event["sent"]), (3, 3))

    def test_countsReadNaturally(self) -> None:
        """
        Counts of one read in the singular, others in the plural: "1 byte
        received", "Shutting down 1 connection", "2 connections".
        """
        factory = quietFactory(Clock())
        _, one = connectServer(factory)
        connectServer(factory)
        one.receive(b"x")
        with capturedLogs() as events:
            one.receiveEOF()
            factory.shutdown(10)
        texts = [e["log_format"].format(**e) for e in events]
        self.assertEqual(texts[0], "Connection from 192.0.2.7:40000 closed (1 byte received)")
        self.assertEqual(texts[1], "Shutting down 1 connection (at most 10 seconds)")
        factory = quietFactory(Clock())
        connectServer(factory)
        connectServer(factory)
        with capturedLogs() as events:
            factory.shutdown(10)
        self.assertEqual(
            events[0]["log_format"].format(**events[0]),
            "Shutting down 2 connections (at most 10 seconds)",
        )

    def test_closeEventFieldsAreData(self) -> None:
        """
        The close event's fields are the connection's data only: the word
        "byte" or "bytes" is in its format, not in a field of its own (the
        JSON log showed C{"bytes": "bytes"}).
        """
        for sent, text in [(b"x", "1 byte received"), (b"xy", "2 bytes received")]:
            _, transport = connectServer(quietFactory(Clock()))
            transport.receive(sent)
            with capturedLogs() as events:
                transport.receiveEOF()
            [event] = events
            self.assertNotIn("bytes", event)
            self.assertEqual(
                event["log_format"].format(**event),
                f"Connection from 192.0.2.7:40000 closed ({text})",
            )

    def test_abnormalCloseLoggedWithReason(self) -> None:
        """
        A lost connection (a reset, say) is logged as lost, with the reason.
        """
        protocol, _ = connectServer(quietFactory(Clock()))
        with capturedLogs() as events:
            protocol.connectionLost(Failure(ConnectionLost("reset by peer")))
        [event] = events
        self.assertIn("lost", event["log_format"])
        self.assertIn("reset by peer", event["reason"])

    def test_lossAfterEOFWithNothingOwedIsClean(self) -> None:
        """
        A peer that ends its side and closes at once (a UNIX-socket peer's
        close shows up as a loss) is reported as closed when nothing was
        left to send: nothing was lost.
        """
        protocol, transport = connectServer(quietFactory(Clock()), peerReads=False)
        transport.receive(b"abc")
        transport.read()
        transport.receiveEOF()
        with capturedLogs() as events:
            protocol.connectionLost(Failure(ConnectionLost()))
        self.assertIn("closed", events[0]["log_format"])

    def test_lossAfterEOFWithRepliesOwedIsALoss(self) -> None:
        """
        The same loss while replies were still unsent is reported as lost.
        """
        protocol, transport = connectServer(quietFactory(Clock()), peerReads=False)
        transport.receive(b"abc")
        transport.receiveEOF()
        with capturedLogs() as events:
            protocol.connectionLost(Failure(ConnectionLost()))
        self.assertIn("lost", events[0]["log_format"])

    def test_previewShortChunkWhole(self) -> None:
        """
        A chunk shorter than the preview is shown whole.
        """
        self.assertEqual(preview(b"hi\x00"), repr(b"hi\x00"))


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

    def test_unreadInputIsNoReset(self) -> None:
        """
        A connection accepted with its input still unread (the server was
        busy, or stopped) is drained like any other: the shutdown sends a
        FIN, discards what is read, and is done when the peer closes; no
        abort, and the close line counts the discarded bytes.
        """
        protocol, transport = connectServer(self.factory)
        d = self.factory.shutdown(10)
        self.assertTrue(transport.writeDisconnected)
        self.assertFalse(transport.disconnected)
        self.assertNoResult(d)
        with capturedLogs() as events:
            transport.receive(b"x" * 1000)
            transport.receiveEOF()
        self.successResultOf(d)
        self.assertFalse(transport.aborted)
        self.assertEqual((protocol.echoed, protocol.discarded), (0, 1000))
        [closed] = [e for e in events if "closed" in e["log_format"]]
        self.assertEqual((closed["received"], closed["sent"], closed["discarded"]), (1000, 0, 1000))

    def test_peerStillSendingLosesNothing(self) -> None:
        """
        The issue's case, in memory: a peer that keeps sending and has not
        read its replies yet gets every reply to what the server had read,
        then the end of the stream; what it sends meanwhile is discarded;
        the server's counts agree with what the peer received.
        """
        protocol, transport = connectServer(self.factory, peerReads=False)
        sent = b"".join(bytes([97 + i % 26]) * 4096 for i in range(64))
        for i in range(0, len(sent), 4096):
            transport.receive(sent[i : i + 4096])
        d = self.factory.shutdown(10)
        for _ in range(10):
            transport.receive(b"later" * 800)
        received = b""
        while not transport.writeDisconnected:
            received += transport.read(4096)
        self.assertEqual(received, sent[: len(received)].upper())
        self.assertEqual(len(received), protocol.echoed)
        self.assertNoResult(d)
        transport.receiveEOF()
        self.successResultOf(d)
        self.assertFalse(transport.aborted)
        received_, sentBack = self.factory.byteCounts()
        self.assertEqual(sentBack, len(received))
        self.assertEqual(received_, len(sent) + 10 * 4000)

    def test_refusesNewConnections(self) -> None:
        """
        Once shutting down, new connections are refused.
        """
        self.factory.shutdown(10)
        self.assertRaises(Refused, connectServer, self.factory)

    def test_deadlineAborts(self) -> None:
        """
        Connections still open at the deadline are aborted, and the deadline
        is not left scheduled afterwards.
        """
        _, transport = connectServer(self.factory, peerReads=False)
        transport.receive(b"owed")
        d = self.factory.shutdown(10)
        self.clock.advance(9.9)
        self.assertFalse(transport.disconnected)
        self.clock.advance(0.1)
        self.assertTrue(transport.aborted)
        self.successResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_abortAllCutsShort(self) -> None:
        """
        C{abortAll} (a second SIGTERM) ends the wait at once.
        """
        _, transport = connectServer(self.factory, peerReads=False)
        transport.receive(b"owed")
        d = self.factory.shutdown(10)
        with capturedLogs() as events:
            self.factory.abortAll("on a second SIGTERM")
        self.successResultOf(d)
        self.assertTrue(transport.aborted)
        self.assertEqual(
            events[0]["log_format"].format(**events[0]),
            "Aborting 1 connection still open on a second SIGTERM",
        )


class CountTests(SynchronousTestCase):
    """
    The factory counts bytes over open and closed connections.
    """

    def test_byteCounts(self) -> None:
        """
        Received counts what was echoed and what was discarded; sent counts
        what was echoed; both include closed connections.
        """
        factory = quietFactory(Clock())
        _, first = connectServer(factory, client(port=1))
        first.receive(b"12345")
        first.receiveEOF()
        _, second = connectServer(factory, client(port=2), peerReads=False)
        second.receive(b"abc")
        factory.connections.copy().pop().finish()
        second.receive(b"zz")
        self.assertEqual(factory.byteCounts(), (10, 8))


def formatted(events: Sequence[LogEvent]) -> list[str]:
    """
    The text of each event, as the log shows it.
    """
    from twisted.logger import formatEvent

    return [formatEvent(event) for event in events]


class PlainTests(SynchronousTestCase):
    """
    C{plain=True}: the server's protocols echo every byte unchanged (RFC
    862), under the same policies; the uppercase echo stays the default.
    """

    def test_defaultIsUppercase(self) -> None:
        """
        Without C{plain}, the factory's protocols uppercase.
        """
        factory = quietFactory(Clock())
        self.assertFalse(factory.plain)
        _, transport = connectServer(factory)
        transport.receive(b"hello\n")
        self.assertEqual(transport.value(), b"HELLO\n")

    def test_everyByteUnchanged(self) -> None:
        """
        With C{plain}, all 256 byte values come back unchanged, quiet or
        logging every chunk; the protocol is the server's plain echo.
        """
        data = bytes(range(256)) * 3
        for logData in (False, True):
            factory = UppercaseFactory(Clock(), plain=True, logData=logData)
            self.assertTrue(factory.plain)
            self.assertEqual(factory.logData, logData)
            with capturedLogs():
                protocol, transport = connectServer(factory)
                transport.receive(data[:100])
                transport.receive(data[100:])
            self.assertIsInstance(protocol, server.PlainServerProtocol)
            self.assertNotIsInstance(protocol, UppercaseProtocol)
            self.assertEqual(transport.value(), data)
            self.assertEqual(factory.byteCounts(), (len(data), len(data)))

    def test_chunksLogged(self) -> None:
        """
        The plain echo that logs data logs each chunk as the uppercase one
        does.
        """
        factory = UppercaseFactory(Clock(), plain=True, logData=True)
        with capturedLogs() as events:
            _, transport = connectServer(factory)
            transport.receive(b"abc")
        [chunk] = [e for e in events if e["log_format"] == server.RECEIVED]
        self.assertEqual((chunk["size"], chunk["data"]), (3, "b'abc'"))
        self.assertEqual(transport.value(), b"abc")

    def test_shutdownLosesNothing(self) -> None:
        """
        The graceful shutdown delivers every reply unchanged, then the end
        of the stream, and discards what arrives meanwhile.
        """
        factory = quietFactory(Clock(), plain=True)
        protocol, transport = connectServer(factory, peerReads=False)
        sent = bytes(range(256)) * 512
        transport.receive(sent)
        d = factory.shutdown(10)
        transport.receive(b"later")
        received = b""
        while not transport.writeDisconnected:
            received += transport.read(4096)
        self.assertEqual(received, sent)
        self.assertEqual(protocol.discarded, 5)
        transport.receiveEOF()
        self.successResultOf(d)
        self.assertFalse(transport.aborted)
