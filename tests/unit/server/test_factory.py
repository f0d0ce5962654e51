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
from uppercase.server._logbudget import CHUNKS_PER_SECOND, CONNECTIONS_PER_SECOND
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


class IdleTimeoutTests(SynchronousTestCase):
    """
    A connection with no activity for the idle timeout is closed; an active
    one never is.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.factory = quietFactory(self.clock, idleTimeout=100.0, closeTimeout=10.0)
        self.protocol, self.transport = connectServer(self.factory)

    def wait(self, seconds: int) -> None:
        """
        Let C{seconds} pass one at a time, as a real reactor would.
        """
        self.clock.pump([1] * seconds)

    def test_silentConnectionClosed(self) -> None:
        """
        A silent connection is still open just before the timeout, and is
        closed at most a quarter of the timeout after it, and logged with
        how long it was idle.
        """
        self.wait(99)
        self.assertFalse(self.transport.disconnecting)
        with capturedLogs() as events:
            self.wait(26)
        self.assertTrue(self.transport.disconnected)
        self.assertFalse(self.transport.aborted)
        self.assertEqual(self.factory.idleClosed, 1)
        [idle] = [e for e in events if "idle" in e["log_format"]]
        self.assertGreaterEqual(idle["idle"], 100)
        self.assertLessEqual(idle["idle"], 125)

    def test_timeNotTicks(self) -> None:
        """
        The timeout is measured in time: a clock that jumps past it (or a
        reactor that stalls) still closes the connection.
        """
        clock = Clock()
        factory = quietFactory(clock, idleTimeout=10)
        _, transport = connectServer(factory)
        clock.advance(9)
        clock.advance(3.5)
        self.assertTrue(transport.disconnected)

    def test_lateSweepsDoNotDelayTheClose(self) -> None:
        """
        A reactor that runs each sweep a little late (as real ones do) still
        closes within 1.25 timeouts of the last activity.
        """
        clock = Clock()
        factory = quietFactory(clock, idleTimeout=1)
        _, transport = connectServer(factory)
        transport.receive(b"x")
        late = [0.003, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001]
        while not transport.writeDisconnecting:
            [sweep] = clock.getDelayedCalls()
            clock.advance(sweep.getTime() - clock.seconds() + late.pop(0))
        self.assertLessEqual(clock.seconds(), 1.25 + 0.001)

    def test_activeConnectionKept(self) -> None:
        """
        A connection that sends something every 90 seconds is never closed.
        """
        for _ in range(20):
            self.wait(90)
            self.transport.receive(b"ping")
        self.assertFalse(self.transport.disconnecting)

    def test_idleMeasuredFromLastData(self) -> None:
        """
        After the last data, the connection lives at least the full timeout.
        """
        self.wait(60)
        self.transport.receive(b"late")
        self.wait(99)
        self.assertFalse(self.transport.disconnecting)
        self.wait(30)
        self.assertTrue(self.transport.disconnecting)

    def test_idleCloseIsGraceful(self) -> None:
        """
        An idle connection that echoed something is half-closed, so that a
        peer that sends at the last moment loses none of its replies; it is
        aborted only if it has not finished closing within the close
        timeout.
        """
        clock = Clock()
        factory = quietFactory(clock, idleTimeout=10, closeTimeout=5)
        protocol, transport = connectServer(factory, peerReads=False)
        transport.receive(b"owed")
        transport.read()
        clock.pump([1] * 13)
        self.assertTrue(transport.writeDisconnected)
        self.assertFalse(transport.disconnected)
        clock.pump([1] * 4)
        self.assertFalse(transport.disconnected)
        clock.pump([1] * 1)
        self.assertTrue(transport.aborted)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_peerClosingInTimeIsClean(self) -> None:
        """
        A peer that ends its side after the idle half-close ends the
        connection cleanly, and the abort timer is cancelled.
        """
        clock = Clock()
        factory = quietFactory(clock, idleTimeout=10, closeTimeout=5)
        _, transport = connectServer(factory)
        transport.receive(b"x")
        clock.pump([1] * 13)
        self.assertTrue(transport.writeDisconnected)
        transport.receiveEOF()
        self.assertTrue(transport.disconnected)
        self.assertFalse(transport.aborted)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_readerOfKernelBufferKept(self) -> None:
        """
        A peer that reads steadily from what the kernel holds for it (the
        server's own buffer long empty, nothing received) is not idle: it is
        kept for many timeouts, and closed a timeout after it stops.
        """
        self.transport.receive(b"x" * 1000)
        self.transport.kernelUnsent = 1_000_000
        for _ in range(500):
            self.wait(1)
            self.transport.kernelUnsent -= 1000
        self.assertFalse(self.transport.disconnecting)
        self.wait(99)
        self.assertFalse(self.transport.writeDisconnecting)
        self.wait(26)
        self.assertTrue(self.transport.writeDisconnecting)

    def idleLogged(self, kernelSaysAgo: float) -> float:
        """
        The idle time logged for the silent connection, when the kernel
        says its last data came C{kernelSaysAgo} seconds ago.
        """
        self.patch(server, "receivedAgo", lambda transport: kernelSaysAgo)
        with capturedLogs() as events:
            self.wait(125)
        [idle] = [e for e in events if "idle" in e["log_format"]]
        return float(idle["idle"])

    def test_idleTimeFromKernel(self) -> None:
        """
        Where the kernel tells when the last data came, the logged idle time
        is the kernel's (the sweep only knows it to a quarter timeout).
        """
        self.assertEqual(self.idleLogged(113.0), 113.0)

    def test_idleTimeFromKernelBounded(self) -> None:
        """
        The kernel's figure is taken only within what the sweep knows: at
        most one sweep interval more than the sweep saw.
        """
        self.assertEqual(self.idleLogged(500.0), 125.0)

    def test_idleTimeOfStalledSendFromSweep(self) -> None:
        """
        A connection idle because its peer takes nothing of what it is owed
        is logged with the sweep's figure: when data last came says nothing
        about when the peer last read.
        """
        self.transport.kernelUnsent = 500_000
        self.assertEqual(self.idleLogged(113.0), 100.0)

    def test_stuckKernelBufferIsIdle(self) -> None:
        """
        Bytes sitting in the kernel for a peer that does not read them are
        no activity: the connection is closed after the timeout.
        """
        self.transport.receive(b"x")
        self.transport.kernelUnsent = 500_000
        self.wait(125)
        self.assertTrue(self.transport.writeDisconnecting)

    def test_unknownKernelBufferAsBefore(self) -> None:
        """
        Where the kernel's queue cannot be read, activity is what the server
        itself sees, as before.
        """
        self.transport.kernelUnsent = None
        self.transport.receive(b"x")
        self.wait(125)
        self.assertTrue(self.transport.writeDisconnecting)

    def test_lingeringCloseWaitsForSteadyReader(self) -> None:
        """
        A connection closed for being idle is not aborted at the close
        timeout while its peer goes on reading what the kernel holds (it
        stopped for a whole idle timeout, then resumed); it is aborted once
        it makes no progress for a close timeout.
        """
        clock = Clock()
        factory = quietFactory(clock, idleTimeout=10, closeTimeout=5)
        _, transport = connectServer(factory)
        transport.receive(b"owed")
        transport.kernelUnsent = 300_000
        clock.pump([1] * 13)
        self.assertTrue(transport.writeDisconnected)
        for _ in range(60):
            transport.kernelUnsent -= 1000
            clock.advance(1)
        self.assertFalse(transport.disconnected)
        clock.pump([1] * 4)
        self.assertFalse(transport.disconnected)
        with capturedLogs() as events:
            clock.pump([1] * 1)
        self.assertTrue(transport.aborted)
        self.assertEqual(clock.getDelayedCalls(), [])
        [abort] = [e for e in events if "Aborting" in e["log_format"]]
        self.assertEqual(abort["unsent"], "240000")

    def test_lingeringCloseEndsForPeerThatOnlySends(self) -> None:
        """
        A connection closed for being idle whose peer only goes on sending
        (its bytes are discarded) and never closes is aborted once what it
        is owed makes no progress for a close timeout.
        """
        clock = Clock()
        factory = quietFactory(clock, idleTimeout=10, closeTimeout=5)
        _, transport = connectServer(factory)
        transport.receive(b"x")
        clock.pump([1] * 13)
        self.assertTrue(transport.writeDisconnected)
        for _ in range(15):
            if transport.disconnected:
                break
            transport.receive(b"more")
            clock.advance(1)
        self.assertTrue(transport.aborted)

    def test_abortCountsKernelBytes(self) -> None:
        """
        The abort line counts the bytes still in the kernel with those in
        the server's buffer; where the kernel cannot say, it says so.
        """
        for kernel, unsent in [(2_600_000, "2600004"), (None, "4 (and what the kernel holds)")]:
            clock = Clock()
            factory = quietFactory(clock, idleTimeout=10, closeTimeout=5)
            _, transport = connectServer(factory, peerReads=False)
            transport.receive(b"owed")
            transport.kernelUnsent = kernel
            with capturedLogs() as events:
                clock.pump([1] * 19)
            self.assertTrue(transport.aborted)
            [abort] = [e for e in events if "Aborting" in e["log_format"]]
            self.assertEqual(abort["unsent"], unsent)
            self.assertIn(f"({unsent} bytes unsent)", abort["log_format"].format(**abort))

    def test_noTimerLeftAfterClose(self) -> None:
        """
        Closing the connection cancels its idle check.
        """
        self.transport.reset()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_zeroDisables(self) -> None:
        """
        An idle timeout of 0 schedules nothing.
        """
        clock = Clock()
        connectServer(quietFactory(clock, idleTimeout=0))
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
        _, first = connectServer(factory, client(port=1))
        connectServer(factory, client(port=2))
        with capturedLogs() as events:
            self.assertRaises(Refused, connectServer, factory, client(port=3))
        self.assertEqual(factory.rejected, 1)
        self.assertIn("connections already open", events[0]["reason"])
        first.reset()
        connectServer(factory, client(port=4))

    def test_maxPerIP(self) -> None:
        """
        C{maxPerIP} limits connections from one host and not from others.
        """
        factory = quietFactory(Clock(), maxPerIP=1)
        connectServer(factory, client("192.0.2.1"))
        self.assertRaises(Refused, connectServer, factory, client("192.0.2.1", 2))
        connectServer(factory, client("192.0.2.2"))
        self.assertEqual(len(factory.connections), 2)
        self.assertEqual(factory.rejected, 1)

    def test_maxPerIPCountsMappedAsIPv4(self) -> None:
        """
        A client counts as one host whether it arrives as C{1.2.3.4} or,
        through a dual-stack socket, as C{::ffff:1.2.3.4}.
        """
        factory = quietFactory(Clock(), maxPerIP=1)
        connectServer(factory, client("192.0.2.1"))
        mapped = IPv6Address("TCP", "::ffff:192.0.2.1", 2)
        self.assertRaises(Refused, connectServer, factory, mapped)

    def test_refusalsLoggedOncePerBurst(self) -> None:
        """
        A burst of refusals logs the first at once and the rest as one
        summary a second later; once the burst is over nothing stays
        scheduled.
        """
        clock = Clock()
        factory = quietFactory(clock, maxConnections=1, idleTimeout=0)
        connectServer(factory)
        with capturedLogs() as events:
            for port in range(100):
                factory.buildProtocol(client("192.0.2.9", port))
            self.assertEqual(len(events), 1)
            clock.advance(1)
            self.assertEqual(len(events), 2)
            self.assertEqual(events[1]["count"], 99)
            clock.advance(1)
        self.assertEqual(len(events), 2)
        self.assertEqual(factory.rejected, 100)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_summaryOfOneIsSingular(self) -> None:
        """
        A summary of one more refusal says "connection", not "connections".
        """
        clock = Clock()
        factory = quietFactory(clock, maxConnections=1, idleTimeout=0)
        connectServer(factory)
        with capturedLogs() as events:
            factory.buildProtocol(client(port=1))
            factory.buildProtocol(client(port=2))
            clock.advance(1)
        summary = events[1]["log_format"].format(**events[1])
        self.assertTrue(summary.startswith("Refused 1 more connection in the last 1s"), summary)

    def test_summaryFieldsAreData(self) -> None:
        """
        The refusal summary's fields are data only: the word "connection"
        or "connections" is in its format, not in a field of its own.
        """
        clock = Clock()
        factory = quietFactory(clock, maxConnections=1, idleTimeout=0)
        connectServer(factory)
        with capturedLogs() as events:
            for port in range(3):
                factory.buildProtocol(client(port=port))
            clock.advance(1)
        self.assertNotIn("connections", events[1])
        self.assertTrue(
            formatted(events)[1].startswith("Refused 2 more connections in the last 1s")
        )

    def test_unlimited(self) -> None:
        """
        With both limits 0, any number of connections is accepted.
        """
        factory = quietFactory(Clock(), maxConnections=0, maxPerIP=0)
        for port in range(1, 200):
            connectServer(factory, client(port=port))
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


class LogBudgetTests(SynchronousTestCase):
    """
    Per-connection and per-chunk lines are bounded as refusals are: past a
    budget a second, the rest of the second's are summed in one line.
    """

    def test_connectionLinesFolded(self) -> None:
        """
        Past L{CONNECTIONS_PER_SECOND} connections in a second, the rest of
        that second's connections are not logged one by one but summed in
        one line when the second ends: how many, opened, closed cleanly,
        lost.
        """
        clock = Clock()
        factory = quietFactory(clock, idleTimeout=0)
        total = 5321
        with capturedLogs() as events:
            for n in range(total):
                protocol, transport = connectServer(factory)
                if n % 250 == 0:
                    protocol.connectionLost(Failure(ConnectionLost("reset by peer")))
                else:
                    transport.receiveEOF()
            self.assertEqual(len(events), 2 * CONNECTIONS_PER_SECOND)
            clock.advance(1)
        self.assertEqual(len(events), 2 * CONNECTIONS_PER_SECOND + 1)
        folded = total - CONNECTIONS_PER_SECOND
        lost = len(range(CONNECTIONS_PER_SECOND, total, 250))
        self.assertEqual(
            formatted(events)[-1],
            f"Folded {folded:,} connections in the last second: {folded:,} opened, "
            f"{folded - lost:,} closed cleanly, {lost:,} lost (past 100 connections a "
            "second, their lines are summed here)",
        )
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_budgetEachSecond(self) -> None:
        """
        The budget is renewed each second: a steady 150 connections a
        second log 100 one by one and one summary, every second.
        """
        clock = Clock()
        factory = quietFactory(clock, idleTimeout=0)
        for _ in range(3):
            with capturedLogs() as events:
                for _ in range(150):
                    connectServer(factory)[1].receiveEOF()
                clock.advance(1)
            self.assertEqual(len(events), 2 * CONNECTIONS_PER_SECOND + 1)
            self.assertEqual(events[-1]["count"], 50)

    def test_underBudgetNothingFolded(self) -> None:
        """
        Up to the budget, every connection is logged and no timer is set.
        """
        clock = Clock()
        factory = quietFactory(clock, idleTimeout=0)
        with capturedLogs() as events:
            for _ in range(CONNECTIONS_PER_SECOND):
                connectServer(factory)[1].receiveEOF()
        self.assertEqual(len(events), 2 * CONNECTIONS_PER_SECOND)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_foldedConnectionClosedLater(self) -> None:
        """
        A folded connection that closes in a later second is counted in
        that second's summary, not logged on its own.
        """
        clock = Clock()
        factory = quietFactory(clock, idleTimeout=0)
        with capturedLogs():
            for _ in range(CONNECTIONS_PER_SECOND):
                connectServer(factory)
            _, late = connectServer(factory)
            clock.advance(1)
        clock.advance(5)
        with capturedLogs() as events:
            late.receiveEOF()
            self.assertEqual(events, [])
            clock.advance(1)
        self.assertEqual(
            formatted(events),
            [
                "Folded 1 connection in the last second: 0 opened, 1 closed cleanly, "
                "0 lost (past 100 connections a second, their lines are summed here)"
            ],
        )

    def test_chunkLinesFolded(self) -> None:
        """
        Past L{CHUNKS_PER_SECOND} received chunks in a second, the rest of
        that second's are summed in one line (chunks and bytes), with no
        timer per chunk: one for the summary.
        """
        clock = Clock()
        factory = UppercaseFactory(clock, logData=True, idleTimeout=0)
        _, transport = connectServer(factory)
        with capturedLogs() as events:
            for _ in range(CHUNKS_PER_SECOND + 4000):
                transport.receive(b"abc")
                self.assertLessEqual(len(clock.getDelayedCalls()), 1)
            self.assertEqual(len(events), CHUNKS_PER_SECOND)
            clock.advance(1)
        self.assertEqual(
            formatted(events)[-1],
            "Folded 4,000 received chunks in the last second (12,000 bytes; past "
            "1,000 chunks a second, they are summed here)",
        )
        self.assertEqual(clock.getDelayedCalls(), [])
