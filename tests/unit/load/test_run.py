"""
A whole load run, in memory: connecting at a bounded pace, connect errors by
kind, warm-up, duration and count, time-outs, fail-fast, interruption,
reconnection, and the exit status the result carries.
"""

from __future__ import annotations

import dataclasses
import io
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IHandshakeListener,
    IProtocolFactory,
    ISSLTransport,
)
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import directlyProvides

from uppercase.client._settings import ClientSettings
from uppercase.client._tls import CertificateRejected
from uppercase.load.protocol import LoadProtocol
from uppercase.load.report import TextLoadReport, summaryRecord
from uppercase.load.result import RunObserver, RunResult, Snapshot, measurableSpan
from uppercase.load.run import CONNECT_AT_ONCE, LoadRun
from uppercase.load.stream import StreamProtocol
from uppercase.testing import StreamTransport, asciiUpper

LOAD = ClientSettings(connections=1, count=10)


class Collect(RunObserver):
    """
    Keeps what the run reported.
    """

    def __init__(self) -> None:
        self.snapshots: list[Snapshot] = []
        self.results: list[RunResult] = []
        self.startedCount = 0

    def started(self, run: Any) -> None:
        self.startedCount += 1

    def interval(self, snapshot: Snapshot) -> None:
        self.snapshots.append(snapshot)

    def finished(self, result: RunResult) -> None:
        self.results.append(result)


class FakeConnect:
    """
    Connection attempts the test completes or fails by hand; completed
    ones get a L{StreamTransport} whose peer reads everything (the test
    plays the server with L{answer}).
    """

    def __init__(self) -> None:
        self.attempts: list[tuple[IProtocolFactory, Deferred[Any]]] = []
        self.transports: list[StreamTransport] = []

    def __call__(self, factory: IProtocolFactory) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.attempts.append((factory, d))
        return d

    def succeed(self, index: int = 0) -> StreamTransport:
        factory, d = self.attempts.pop(index)
        protocol = factory.buildProtocol(None)  # type: ignore[arg-type]
        transport = StreamTransport()
        transport.answered = 0  # type: ignore[attr-defined]
        transport.connect(protocol)  # type: ignore[arg-type]
        self.transports.append(transport)
        d.callback(protocol)
        return transport

    def fail(self, error: Exception, index: int = 0) -> None:
        factory, d = self.attempts.pop(index)
        d.errback(Failure(error))

    def answer(self, transport: StreamTransport, wrong: bool = False) -> None:
        data = transport.value()
        new = data[transport.answered :]  # type: ignore[attr-defined]
        transport.answered = len(data)  # type: ignore[attr-defined]
        if new and not transport.disconnected:
            transport.protocol.dataReceived(new if wrong else asciiUpper(new))

    def answerAll(self, wrong: bool = False) -> None:
        for transport in list(self.transports):
            self.answer(transport, wrong)


class LoadRunCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.connect = FakeConnect()
        self.observer = Collect()

    def start(self, settings: ClientSettings, **kwargs: Any) -> LoadRun:
        self.loadRun = LoadRun(settings, self.clock, self.connect, self.observer, **kwargs)
        self.done = self.loadRun.start()
        return self.loadRun

    def result(self) -> RunResult:
        return self.successResultOf(self.done)


class ConnectingTests(LoadRunCase):
    """
    Connections are opened at a bounded pace; failures are counted by kind
    and do not end the run.
    """

    def test_boundedPace(self) -> None:
        """
        Of 100 connections, at most L{CONNECT_AT_ONCE} are attempted at
        once; each attempt that ends lets another start.
        """
        self.start(dataclasses.replace(LOAD, connections=100))
        self.assertEqual(len(self.connect.attempts), CONNECT_AT_ONCE)
        self.connect.succeed()
        self.connect.fail(ConnectionRefusedError())
        self.assertEqual(len(self.connect.attempts), CONNECT_AT_ONCE)
        self.assertEqual(self.loadRun.stats.errors["refused"], 1)

    def test_errorsByKindNotFatal(self) -> None:
        """
        Of 3 connections, 2 refused: the run goes on with the third, and
        ends with status 1 and the errors by kind.
        """
        self.start(dataclasses.replace(LOAD, connections=3, count=5))
        self.connect.fail(ConnectionRefusedError())
        transport = self.connect.succeed()
        self.connect.fail(ConnectionRefusedError())
        for _ in range(5):
            self.connect.answer(transport)
        self.clock.advance(0)
        result = self.result()
        self.assertEqual((result.verified, result.errors, result.status), (5, {"refused": 2}, 1))
        self.assertEqual(result.failure, "errors: 2 refused")

    def test_noConnectionAtAll(self) -> None:
        """
        When the only connection is refused, the run ends at once with the
        ping-like client's words.
        """
        self.start(LOAD)
        self.connect.fail(ConnectionRefusedError())
        result = self.result()
        self.assertEqual(
            (result.status, result.failure),
            (1, "cannot connect to tcp:127.0.0.1:9527: Connection refused"),
        )


class EndingTests(LoadRunCase):
    """
    A run ends after its count or duration, and its status is 0 only if
    every message sent was verified.
    """

    def test_countVerified(self) -> None:
        """
        10 messages, all answered right: status 0, closed cleanly, no timer
        left.
        """
        self.start(LOAD)
        transport = self.connect.succeed()
        for _ in range(10):
            self.connect.answer(transport)
        self.clock.advance(0)
        result = self.result()
        self.assertEqual((result.sent, result.verified, result.status), (10, 10, 0))
        self.assertTrue(transport.disconnected)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_durationAfterWarmup(self) -> None:
        """
        With a warm-up of 1 s and a duration of 2 s the run stops sending
        at 3 s; latencies and rates cover only messages scheduled after 1 s.
        """
        settings = dataclasses.replace(LOAD, duration=2.0, warmup=1.0, rate=10)
        self.start(settings)
        transport = self.connect.succeed()
        for _ in range(40):
            self.clock.advance(0.1)
            self.connect.answer(transport)
        self.clock.advance(0)
        result = self.result()
        # Due at 0.0 ... 2.9 (30 messages; the stop at 3.0 comes first);
        # measured: those due at 1.0 ... 2.9.
        self.assertEqual(result.sent, 30)
        self.assertEqual(result.measured, 20)
        self.assertEqual(result.status, 0)

    def test_wrongRepliesFail(self) -> None:
        """
        A peer that echoes without uppercasing: every message is reported
        wrong, and the status is 1.
        """
        self.start(dataclasses.replace(LOAD, count=4))
        transport = self.connect.succeed()
        for _ in range(4):
            self.connect.answer(transport, wrong=True)
        self.clock.advance(0)
        result = self.result()
        self.assertEqual((result.failed, result.mismatchCount, result.status), (4, 4, 1))
        self.assertTrue(
            (result.failure or "").startswith("4 wrong replies; first: connection 1, message 1")
        )

    def test_failFast(self) -> None:
        """
        With fail-fast, the first wrong byte ends the run at once.
        """
        self.start(dataclasses.replace(LOAD, count=0, duration=60, failFast=True))
        transport = self.connect.succeed()
        self.connect.answer(transport, wrong=True)
        self.clock.advance(0)
        result = self.result()
        self.assertEqual((result.status, result.mismatchCount), (1, 1))
        self.assertTrue((result.failure or "").startswith("wrong reply: connection 1, message 1"))
        self.assertTrue(transport.aborted)

    def test_replyTimeout(self) -> None:
        """
        A reply that makes no progress for the time-out counts as a time-out
        and a lost message; the connection is aborted.
        """
        self.start(dataclasses.replace(LOAD, count=1, timeout=3.0))
        transport = self.connect.succeed()
        self.clock.advance(5)
        result = self.result()
        self.assertEqual((result.errors, result.lost, result.status), ({"reply timeout": 1}, 1, 1))
        self.assertTrue(transport.aborted)

    def test_serverResets(self) -> None:
        """
        A connection reset with messages in flight: they are lost, the
        error is a reset, and with no connection left the run ends.
        """
        self.start(dataclasses.replace(LOAD, count=0, duration=10))
        transport = self.connect.succeed()
        transport.reset()
        result = self.result()
        self.assertEqual((result.errors, result.lost, result.status), ({"reset": 1}, 1, 1))

    def test_closedBetweenMessagesFails(self) -> None:
        """
        A connection the server closes with nothing in flight (open loop,
        between two messages) is not a clean end: the run fails at once,
        in one line, with the close counted as an error.
        """
        self.start(dataclasses.replace(LOAD, count=0, duration=5, rate=4))
        transport = self.connect.succeed()
        self.connect.answer(transport)
        self.clock.advance(0.1)
        transport.receiveEOF()
        result = self.result()
        self.assertEqual((result.sent, result.verified, result.lost), (1, 1, 0))
        self.assertEqual((result.errors, result.status), ({"closed by server": 1}, 1))
        self.assertEqual(
            result.failure,
            "every connection was lost (1 closed by server); "
            "first: connection 1: closed by server after 64 bytes received, 0 owed",
        )

    def test_someConnectionsClosedFails(self) -> None:
        """
        Of 3 connections, 2 closed by the server before any message was
        sent (an accept limit): the run goes on with the third, and fails
        with the closes counted.
        """
        self.start(dataclasses.replace(LOAD, connections=3, count=0, duration=1, rate=4))
        self.connect.succeed().receiveEOF()
        self.connect.succeed().reset()
        transport = self.connect.succeed()
        for _ in range(10):
            self.connect.answer(transport)
            self.clock.advance(0.25)
        result = self.result()
        self.assertEqual(result.errors, {"closed by server": 1, "reset": 1})
        self.assertEqual((result.verified, result.lost, result.status), (result.sent, 0, 1))
        self.assertEqual(
            result.failure,
            "errors: 1 closed by server, 1 reset; "
            "first: connection 1: closed by server after 0 bytes received, 0 owed",
        )

    def test_drainAfterDurationBounded(self) -> None:
        """
        A server that drips right bytes (one every 0.25 s, so no reply's
        own time-out fires) cannot hold the run past the duration plus
        --timeout: what is still out then is cut off, counted as lost, and
        the run fails.
        """
        self.start(dataclasses.replace(LOAD, count=0, duration=1, rate=10, timeout=2.0))
        transport = self.connect.succeed()
        expected = b""
        dripped = 0
        while not self.done.called and self.clock.seconds() < 30:
            expected = asciiUpper(transport.value())
            if dripped < len(expected):
                transport.protocol.dataReceived(expected[dripped : dripped + 1])
                dripped += 1
            self.clock.advance(0.25)
        result = self.result()
        self.assertLessEqual(self.clock.seconds(), 1 + 2 + 1)
        self.assertEqual(result.sent, 10)
        self.assertEqual((result.verified, result.lost), (0, 10))
        self.assertEqual(result.errors, {"cut off after the end": 1})
        self.assertEqual(result.status, 1)
        self.assertTrue(transport.aborted)

    def test_interrupted(self) -> None:
        """
        An interrupt closes the connections once their replies are in, and
        the status is 128 + the signal's number; what was in flight is not
        an error.
        """
        self.start(dataclasses.replace(LOAD, count=0, duration=60, pipeline=2))
        transport = self.connect.succeed()
        self.loadRun.interrupt(2)
        self.assertFalse(transport.disconnected)
        self.connect.answer(transport)
        result = self.result()
        self.assertEqual((result.status, result.reason), (130, "interrupted by SIGINT"))
        self.assertTrue(transport.disconnected)

    def test_interruptCancelsAttempts(self) -> None:
        """
        An interrupt gives up the connection attempts still under way, so
        that the run ends as soon as the open connections are done, not
        after a grace period spent waiting for an attempt (no error counted
        for them).
        """
        self.start(dataclasses.replace(LOAD, connections=2, count=0, duration=60))
        transport = self.connect.succeed()
        [(_, pending)] = self.connect.attempts
        self.loadRun.interrupt(2)
        self.assertTrue(pending.called)
        self.connect.answer(transport)
        result = self.result()
        self.assertEqual((result.status, result.reason), (130, "interrupted by SIGINT"))
        self.assertEqual(self.loadRun.stats.errors, {})
        self.assertEqual(self.clock.seconds(), 0)

    def test_secondInterruptAborts(self) -> None:
        """
        A second interrupt aborts the connections still waiting.
        """
        self.start(dataclasses.replace(LOAD, count=0, duration=60))
        transport = self.connect.succeed()
        self.loadRun.interrupt(15)
        self.loadRun.interrupt(15)
        self.assertTrue(transport.aborted)
        self.assertEqual(self.result().status, 143)

    def test_progressEverySecond(self) -> None:
        """
        The observer hears of every second: phase, rates and percentiles
        (100 messages/s, each answered 5 ms after it was due).
        """
        self.start(dataclasses.replace(LOAD, count=0, duration=10, rate=100))
        transport = self.connect.succeed()
        for _ in range(250):
            self.clock.advance(0.005)
            self.connect.answer(transport)
            self.clock.advance(0.005)
        self.assertEqual(len(self.observer.snapshots), 2)
        first = self.observer.snapshots[0]
        self.assertEqual(first.phase, "measuring")
        self.assertApproximates(first.messagesPerSecond, 100, 1)
        assert first.latency is not None
        self.assertApproximates(first.latency["p50"], 5.0, 0.01)
        self.loadRun.stop()


class ReconnectTests(LoadRunCase):
    """
    The prober (reconnect) tries again with backoff.
    """

    def test_reconnectsAfterLoss(self) -> None:
        """
        A lost connection is counted and a new one attempted after a
        backoff; the run goes on with it; what fell due meanwhile is
        counted as sent on no connection.
        """
        self.start(dataclasses.replace(LOAD, count=0, rate=10), reconnect=True)
        transport = self.connect.succeed()
        transport.reset()
        self.assertEqual(self.connect.attempts, [])
        self.clock.advance(5)
        self.assertEqual(len(self.connect.attempts), 1)
        self.connect.succeed()
        self.assertEqual(len(self.loadRun.protocols), 1)
        self.assertEqual(self.loadRun.stats.errors["reset"], 1)
        self.loadRun.stop()
        self.connect.answerAll()
        result = self.result()
        self.assertEqual(result.errors, {"reset": 1})
        self.assertGreater(result.notSent, 0)  # due while disconnected
        self.assertEqual(result.lost, 1)  # only the one in flight on the lost connection

    def test_closeBetweenMessagesCounted(self) -> None:
        """
        The prober counts a connection the server closes between messages
        as an error, as it counts a reset.
        """
        self.start(dataclasses.replace(LOAD, count=0, rate=10), reconnect=True)
        transport = self.connect.succeed()
        self.connect.answer(transport)
        transport.receiveEOF()
        self.assertEqual(self.loadRun.stats.errors["closed by server"], 1)
        self.loadRun.stop()

    def test_refusedRetried(self) -> None:
        """
        A refused first attempt is retried rather than ending the prober.
        """
        self.start(dataclasses.replace(LOAD, count=0, rate=10), reconnect=True)
        self.connect.fail(ConnectionRefusedError())
        self.assertNoResult(self.done)
        self.clock.advance(5)
        self.assertEqual(len(self.connect.attempts), 1)
        self.loadRun.stop()


class MeasuredTimeTests(LoadRunCase):
    """
    A rate is worked out over a measured span: not over a time too short to
    give one, and for a prober not over the time it had no connection.
    """

    def test_tooShortForARate(self) -> None:
        """
        One reply 0.5 ms after the start: the measured time is too short,
        so there is no rate (not 2,000 messages/s), in the text summary and
        for --min-rate, which cannot have held.
        """
        out = io.BytesIO()
        self.observer = TextLoadReport(out, io.StringIO(), live=False)  # type: ignore[assignment]
        self.start(dataclasses.replace(LOAD, count=1, minRate=1000.0))
        transport = self.connect.succeed()
        self.clock.advance(0.0005)
        self.connect.answer(transport)
        self.clock.advance(0)
        result = self.result()
        self.assertEqual((result.verified, result.messagesPerSecond), (1, None))
        self.assertIsNone(result.megabytesPerSecond)
        self.assertIn(
            "1 sent, 1 verified, 0 failed, 0 lost; measured 1 in 0.5 ms: "
            "too short to measure a rate\n",
            out.getvalue().decode(),
        )
        [check] = result.checks
        self.assertEqual((check.value, check.ok, result.status), (None, False, 1))
        record = summaryRecord(result)
        self.assertEqual((record["messages_per_s"], record["mb_per_s"]), (None, None))

    def test_measurableSpan(self) -> None:
        """
        A span gives a rate from 1 ms on, and for an open loop from one
        message interval on, whichever is longer.
        """
        self.assertFalse(measurableSpan(0.0))
        self.assertFalse(measurableSpan(0.000999))
        self.assertTrue(measurableSpan(0.001))
        self.assertTrue(measurableSpan(0.001, rate=1000.0))
        self.assertFalse(measurableSpan(0.0099, rate=100.0))
        self.assertTrue(measurableSpan(0.01, rate=100.0))

    def test_oneMillisecondIsARate(self) -> None:
        """
        Two replies, the last 2 ms after the start: a rate (1,000
        messages/s).
        """
        self.start(dataclasses.replace(LOAD, count=2))
        transport = self.connect.succeed()
        self.clock.advance(0.001)
        self.connect.answer(transport)
        self.clock.advance(0.001)
        self.connect.answer(transport)
        self.clock.advance(0)
        result = self.result()
        assert result.messagesPerSecond is not None
        self.assertApproximates(result.messagesPerSecond, 1000.0, 1e-6)

    def test_openLoopNeedsOneInterval(self) -> None:
        """
        An open loop at 100 messages/s whose one reply came 5 ms after it
        was due: under one message interval (10 ms), so no rate.
        """
        self.start(dataclasses.replace(LOAD, count=1, rate=100.0))
        transport = self.connect.succeed()
        self.clock.advance(0.005)
        self.connect.answer(transport)
        self.clock.advance(0)
        self.assertIsNone(self.result().messagesPerSecond)

    def test_proberDowntimeLeftOut(self) -> None:
        """
        A prober at 10 messages/s whose connection was down for 7 s: the
        measured time is the time connected, the downtime is given apart,
        and the rate is the one it measured while connected (about 10
        messages/s, not 3).
        """
        out = io.BytesIO()
        self.observer = TextLoadReport(out, io.StringIO(), live=False)  # type: ignore[assignment]
        self.start(dataclasses.replace(LOAD, count=0, rate=10), reconnect=True)
        transport = self.connect.succeed()
        for _ in range(10):
            self.connect.answer(transport)
            self.clock.advance(0.1)
        self.connect.answer(transport)
        transport.reset()
        downAt = self.clock.seconds()
        while self.clock.seconds() < downAt + 7:
            self.clock.advance(0.1)
        [(factory, d)] = self.connect.attempts
        transport = self.connect.succeed()
        upAt = self.clock.seconds()
        for _ in range(10):
            self.clock.advance(0.1)
            self.connect.answer(transport)
        self.loadRun.stop()
        self.connect.answerAll()
        self.clock.advance(0)
        result = self.result()
        self.assertApproximates(result.downSeconds, upAt - downAt, 1e-6)
        self.assertLess(result.seconds, 2.1)
        assert result.messagesPerSecond is not None
        self.assertGreater(result.messagesPerSecond, 9.0)
        self.assertIn(
            f" s connected ({upAt - downAt:.2f} s with no connection left out): ",
            out.getvalue().decode(),
        )

    def test_noDowntimeWhenAlwaysConnected(self) -> None:
        """
        A prober that never lost its connection has no downtime, and its
        summary says nothing of one.
        """
        self.start(dataclasses.replace(LOAD, count=0, rate=10), reconnect=True)
        transport = self.connect.succeed()
        for _ in range(10):
            self.clock.advance(0.1)
            self.connect.answer(transport)
        self.loadRun.stop()
        self.connect.answerAll()
        self.clock.advance(0)
        self.assertEqual(self.result().downSeconds, 0.0)


class GiveUpTests(LoadRunCase):
    """
    Under twistd, a finite run gives up on a port that keeps refusing; a
    prober does not.
    """

    def refuseFor(self, seconds: float) -> None:
        while self.clock.seconds() < seconds and not self.done.called:
            if self.connect.attempts:
                self.connect.fail(ConnectionRefusedError())
            self.clock.advance(1)

    def test_finiteRunGivesUp(self) -> None:
        """
        --count 5 with --timeout 5: refused for 5 s, the run fails in one
        line.
        """
        self.start(dataclasses.replace(LOAD, count=5, timeout=5.0), reconnect=True)
        self.refuseFor(60)
        result = self.result()
        self.assertEqual(result.status, 1)
        self.assertRegex(
            result.failure or "",
            r"^cannot connect to tcp:127.0.0.1:9527: Connection refused \(for [5-9] s\)$",
        )

    def test_proberKeepsTrying(self) -> None:
        """
        --rate 10 --count 0: refused for a minute, it is still trying.
        """
        self.start(dataclasses.replace(LOAD, count=0, rate=10, timeout=5.0), reconnect=True)
        self.refuseFor(60)
        self.assertNoResult(self.done)
        self.loadRun.stop()


class TLSHandshakeTests(LoadRunCase):
    """
    On TLS a message counts as sent only once the connection can carry it:
    after the handshake.  One the handshake fails was never sent.
    """

    def connectTLS(self, index: int = 0) -> StreamTransport:
        """
        Complete attempt C{index} on a transport that is TLS (it provides
        C{ISSLTransport}), its handshake not over yet.
        """
        factory, d = self.connect.attempts.pop(index)
        protocol = factory.buildProtocol(None)  # type: ignore[arg-type]
        transport = StreamTransport()
        directlyProvides(transport, ISSLTransport)
        transport.answered = 0  # type: ignore[attr-defined]
        transport.connect(protocol)  # type: ignore[arg-type]
        self.connect.transports.append(transport)
        d.callback(protocol)
        return transport

    def test_failedHandshakeSentNothing(self) -> None:
        """
        A handshake that fails: nothing was written, nothing counts as
        sent, and the run fails with the TLS error by kind.
        """
        self.start(dataclasses.replace(LOAD, count=2))
        transport = self.connectTLS()
        self.clock.advance(0)
        self.assertEqual((transport.value(), self.loadRun.stats.sent), (b"", 0))
        transport.protocol.connectionLost(
            Failure(CertificateRejected("untrusted certificate", "self-signed"))
        )
        self.clock.advance(0)
        result = self.result()
        self.assertEqual((result.sent, result.verified, result.lost), (0, 0, 0))
        self.assertEqual((result.errors, result.status), ({"untrusted certificate": 1}, 1))
        self.assertEqual(result.failure, "every connection was lost (1 untrusted certificate)")

    def test_everyHandshakeCounted(self) -> None:
        """
        Of two connections whose handshakes fail one after the other, each
        failure is counted.
        """
        self.start(dataclasses.replace(LOAD, connections=2, count=4))
        transports = [self.connectTLS(), self.connectTLS()]
        for transport in transports:
            transport.protocol.connectionLost(
                Failure(CertificateRejected("untrusted certificate", "self-signed"))
            )
        result = self.result()
        self.assertEqual((result.sent, result.errors), (0, {"untrusted certificate": 2}))

    def test_handshakeTimeout(self) -> None:
        """
        A handshake that is not over after C{--timeout} seconds is given up
        on (a C{handshake timeout}), and nothing counts as sent.
        """
        self.start(dataclasses.replace(LOAD, count=2, timeout=5.0))
        transport = self.connectTLS()
        self.clock.advance(6)
        self.assertTrue(transport.aborted)
        result = self.result()
        self.assertEqual(
            (result.sent, result.errors, result.status), (0, {"handshake timeout": 1}, 1)
        )

    def test_sendsOnceHandshakeIsOver(self) -> None:
        """
        Once the handshake is over the run begins, and the messages are
        sent and verified as on TCP.
        """
        self.start(dataclasses.replace(LOAD, count=2))
        transport = self.connectTLS()
        self.assertEqual(self.loadRun.begunAt, None)
        transport.protocol.handshakeCompleted()
        self.assertEqual(self.loadRun.stats.sent, 1)
        for _ in range(2):
            self.connect.answer(transport)
        self.clock.advance(0)
        result = self.result()
        self.assertEqual((result.sent, result.verified, result.status), (2, 2, 0))

    def test_halfCloseKeptThroughEndpoints(self) -> None:
        """
        Neither connection class declares C{IHandshakeListener} (only a
        connection on TLS does, at C{connectionMade}): Twisted's endpoints
        wrap a protocol in one that copies its IHalfCloseableProtocol and
        IHandshakeListener each replacing the last, and a stream would lose
        its half-close on TCP.
        """
        self.assertTrue(IHalfCloseableProtocol.implementedBy(StreamProtocol))
        for kind in (StreamProtocol, LoadProtocol):
            self.assertFalse(IHandshakeListener.implementedBy(kind))

    def test_streamWaitsForHandshake(self) -> None:
        """
        A C{--stream} connection writes nothing before the handshake is
        over, and streams after it.
        """
        self.start(ClientSettings(stream=True, connections=1, count=1, size=64))
        transport = self.connectTLS()
        self.assertEqual(transport.value(), b"")
        transport.protocol.handshakeCompleted()
        self.assertEqual(len(transport.value()), 64)
