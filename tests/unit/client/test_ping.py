"""Specification of the repeating client, driven by a fake clock."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from uppercase.client import (
    STOP_GRACE,
    ClientSettings,
    ConnectionClosedEarly,
    ReplyMismatch,
    ReplyTimeout,
    UppercaseClientFactory,
    UppercaseClientProtocol,
)
from uppercase.server import UppercaseFactory
from uppercase.testing import connectInMemory


class ClientTests(SynchronousTestCase):
    """
    The client sends, waits for the whole reply, checks it, waits the
    interval, and repeats C{count} times.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.replies: list[tuple[int, bytes, float]] = []

    def start(self, **kwargs: object) -> UppercaseClientProtocol:
        kwargs.setdefault("count", 3)
        self.protocol = UppercaseClientProtocol(
            b"hello",
            clock=self.clock,
            onReply=lambda *reply: self.replies.append(reply),
            **kwargs,  # type: ignore[arg-type]
        )
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        return self.protocol

    def sent(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return data

    def close(self, reason: Exception | None = None) -> None:
        self.protocol.connectionLost(Failure(reason or ConnectionDone()))

    def test_sendsMessageWithNewlineOnConnect(self) -> None:
        """
        The message, followed by a newline, goes out as soon as the
        connection is made.
        """
        self.start()
        self.assertEqual(self.sent(), b"hello\n")

    def test_replySplitAcrossReads(self) -> None:
        """
        A reply that arrives one byte at a time is reported once, whole.
        """
        self.start()
        for byte in b"HELLO\n":
            self.assertEqual(self.replies, [])
            self.protocol.dataReceived(bytes([byte]))
        self.assertEqual([r[:2] for r in self.replies], [(1, b"HELLO\n")])

    def test_roundTripTimeMeasured(self) -> None:
        """
        The round-trip time is the clock's time from send to complete reply.
        """
        self.start()
        self.clock.advance(0.25)
        self.protocol.dataReceived(b"HELLO\n")
        self.assertAlmostEqual(self.replies[0][2], 0.25)

    def test_waitsIntervalBeforeNextMessage(self) -> None:
        """
        The next message goes out C{interval} seconds after a reply, not
        before.
        """
        self.start(interval=1.0)
        self.sent()
        self.protocol.dataReceived(b"HELLO\n")
        self.clock.advance(0.999)
        self.assertEqual(self.sent(), b"")
        self.clock.advance(0.001)
        self.assertEqual(self.sent(), b"hello\n")

    def test_closesAfterCountRepliesAndSucceeds(self) -> None:
        """
        After C{count} verified replies the client closes the connection
        and C{done} fires with L{None} once it is gone, leaving no timer.
        """
        self.start(count=3, interval=1.0)
        for _ in range(3):
            self.assertFalse(self.transport.disconnecting)
            self.protocol.dataReceived(b"HELLO\n")
            self.clock.advance(1.0)
        self.assertTrue(self.transport.disconnecting)
        self.close()
        self.assertIsNone(self.successResultOf(self.protocol.done))
        self.assertEqual([r[0] for r in self.replies], [1, 2, 3])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_countZeroRunsForever(self) -> None:
        """
        With C{count=0} the client keeps going.
        """
        self.start(count=0, interval=0.5)
        for _ in range(100):
            self.protocol.dataReceived(b"HELLO\n")
            self.clock.advance(0.5)
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(len(self.replies), 100)

    def test_timeout(self) -> None:
        """
        A reply that is not whole after C{timeout} seconds fails the run
        with L{ReplyTimeout}, carrying what did arrive, and the connection
        is aborted.
        """
        self.start(timeout=5.0)
        self.protocol.dataReceived(b"HEL")
        self.clock.advance(5.0)
        self.assertTrue(self.transport.disconnected)
        self.close(ConnectionLost())
        failure = self.failureResultOf(self.protocol.done, ReplyTimeout)
        self.assertEqual(failure.value.received, 3)
        self.assertEqual(
            str(failure.value),
            "timed out after 3 bytes received, 3 owed: reply 1 incomplete after 5 s (--timeout)",
        )

    def test_timeoutIsPerReply(self) -> None:
        """
        The timeout restarts for every message: slow but steady replies pass.
        """
        self.start(count=3, timeout=5.0, interval=0)
        for _ in range(3):
            self.clock.advance(4.0)
            self.protocol.dataReceived(b"HELLO\n")
            self.clock.advance(0)
        self.close()
        self.successResultOf(self.protocol.done)

    def test_mismatchDetectedEarly(self) -> None:
        """
        A wrong byte fails the run at once with L{ReplyMismatch}, without
        waiting for the rest of the reply.
        """
        self.start()
        self.protocol.dataReceived(b"HEl")
        self.assertTrue(self.transport.disconnected)
        self.close(ConnectionLost())
        failure = self.failureResultOf(self.protocol.done, ReplyMismatch)
        self.assertEqual((failure.value.offset, failure.value.mismatch.received), (2, b"HEl"))

    def test_extraBytesAreAMismatch(self) -> None:
        """
        More bytes than the reply (a server that echoes twice) is a mismatch.
        """
        self.start()
        self.protocol.dataReceived(b"HELLO\nX")
        self.close(ConnectionLost())
        self.failureResultOf(self.protocol.done, ReplyMismatch)

    def test_unsolicitedDataIsAMismatch(self) -> None:
        """
        Data arriving while no reply is due is reported as unexpected.
        """
        self.start(interval=1.0)
        self.protocol.dataReceived(b"HELLO\n")
        self.protocol.dataReceived(b"?")
        self.close(ConnectionLost())
        failure = self.failureResultOf(self.protocol.done, ReplyMismatch)
        self.assertIn("unexpected bytes", str(failure.value))

    def test_earlyCloseReported(self) -> None:
        """
        A connection that ends before every reply arrived fails with
        L{ConnectionClosedEarly}, saying how far it got, and leaves no timer.
        """
        self.start(count=3)
        self.protocol.dataReceived(b"HELLO\n")
        self.close()
        failure = self.failureResultOf(self.protocol.done, ConnectionClosedEarly)
        self.assertEqual(failure.value.verified, 1)
        self.assertIn("after 1 of 3 replies", str(failure.value))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_resetToldFromClose(self) -> None:
        """
        A reset ends the run as a reset, a FIN as a close by the server: what
        TCP said, in the words and kinds the load mode counts.
        """
        for reason, said in (
            (
                ConnectionLost(),
                "connection reset after 6 bytes received, 0 owed; 1 of 3 replies verified",
            ),
            (ConnectionDone(), "connection closed by server after 1 of 3 replies"),
        ):
            self.start(count=3)
            self.protocol.dataReceived(b"HELLO\n")
            self.close(reason)
            failure = self.failureResultOf(self.protocol.done, ConnectionClosedEarly)
            self.assertEqual(str(failure.value), said)

    def test_cutOffMidReply(self) -> None:
        """
        A connection that ends in the middle of a reply says how, with the
        bytes of the stream received and owed: a FIN is C{closed early
        (N of M bytes)}, a reset C{reset after N bytes received, M owed}.
        """
        for reason, said, kind in (
            (
                ConnectionDone(),
                "connection closed early (9 of 12 bytes); 1 of 3 replies verified",
                "closed early",
            ),
            (
                ConnectionLost(),
                "connection reset after 9 bytes received, 3 owed; 1 of 3 replies verified",
                "reset",
            ),
        ):
            self.start(count=3)
            self.protocol.dataReceived(b"HELLO\n")
            self.clock.advance(1.0)
            self.protocol.dataReceived(b"HEL")
            self.close(reason)
            failure = self.failureResultOf(self.protocol.done, ConnectionClosedEarly)
            self.assertEqual((str(failure.value), failure.value.kind), (said, kind))

    def test_stallAfterBytes(self) -> None:
        """
        A server that stops replying (a stall, a blackhole) after some bytes:
        the time-out says how many bytes came and how many are owed.
        """
        self.start(count=3, timeout=2.0)
        self.protocol.dataReceived(b"HELLO\n")
        self.clock.advance(1.0)
        self.protocol.dataReceived(b"HE")
        self.clock.advance(1.0)
        self.protocol.dataReceived(b"LL")
        self.clock.advance(1.0)
        self.close(ConnectionLost())
        failure = self.failureResultOf(self.protocol.done, ReplyTimeout)
        self.assertEqual(
            str(failure.value),
            "timed out after 10 bytes received, 2 owed: reply 2 incomplete after 2 s (--timeout)",
        )

    def test_mismatchSaysWhereAndHowMuch(self) -> None:
        """
        A wrong reply is described by the offset of its first wrong byte
        and the expected and received bytes there, in hex and as text.
        """
        self.start()
        self.protocol.dataReceived(b"HELLx\n")
        self.close(ConnectionLost())
        failure = self.failureResultOf(self.protocol.done, ReplyMismatch)
        self.assertEqual(
            str(failure.value),
            "reply 1 does not match at byte 4: expected 4f, received 78; bytes 0-5: "
            'expected 48 45 4c 4c 4f 0a "HELLO.", received 48 45 4c 4c 78 0a "HELLx."',
        )

    def test_mismatchNumberedAcrossConnections(self) -> None:
        """
        A wrong reply on a connection that carries on from earlier ones is
        named by its number in the whole run.
        """
        self.protocol = UppercaseClientProtocol(
            b"hello", count=2, clock=self.clock, firstSequence=5
        )
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self.protocol.dataReceived(b"HELLO\n")
        self.clock.advance(1.0)
        self.protocol.dataReceived(b"HELLO!")
        self.close(ConnectionLost())
        error = self.failureResultOf(self.protocol.done, ReplyMismatch).value
        self.assertTrue(str(error).startswith("reply 6 does not match at byte 5:"), str(error))

    def test_longMismatchIsBounded(self) -> None:
        """
        A 64 KiB reply that is wrong in its last letter is described in a
        few hundred characters at most: an excerpt of each side around the
        first difference.
        """
        self.protocol = UppercaseClientProtocol(b"a" * 65535, count=1, clock=self.clock)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self.protocol.dataReceived(b"A" * 65534 + b"a\n")
        self.close(ConnectionLost())
        message = str(self.failureResultOf(self.protocol.done, ReplyMismatch).value)
        self.assertLess(len(message), 300, message[:1000])
        self.assertIn("at byte 65534: expected 41, received 61;", message)
        self.assertIn('bytes 65530-65535: expected 41 41 41 41 41 0a "AAAAA."', message)
        self.assertIn('received 41 41 41 41 61 0a "AAAAa."', message)

    def test_mismatchExcerptBoundedMidReply(self) -> None:
        """
        When the difference is in the middle of a long reply, each excerpt
        is a few bytes before it and a few after, however many bytes follow.
        """
        message = bytes([0]) * 1000
        self.protocol = UppercaseClientProtocol(message, count=1, clock=self.clock)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self.protocol.dataReceived(bytes([0]) * 500 + b"\xff" * 501)
        self.close(ConnectionLost())
        text = str(self.failureResultOf(self.protocol.done, ReplyMismatch).value)
        self.assertIn("at byte 500: expected 00, received ff; bytes 496-511:", text)
        self.assertIn("received 00 00 00 00 ff ff ff ff ff ff ff ff ff ff ff ff", text)
        self.assertLess(len(text), 300, text)

    def test_extraBytesDescribed(self) -> None:
        """
        A reply followed by more bytes: the bytes beyond it are reported as
        arriving while no reply was due.
        """
        self.start()
        self.protocol.dataReceived(b"HELLO\nX")
        self.close(ConnectionLost())
        failure = self.failureResultOf(self.protocol.done, ReplyMismatch)
        self.assertEqual(
            str(failure.value),
            'unexpected bytes at stream offset 6 while no reply was due: 58 "X"',
        )

    def test_unexpectedDataBounded(self) -> None:
        """
        64 KiB arriving while no reply is due is described by a short
        excerpt.
        """
        self.start(interval=1.0)
        self.protocol.dataReceived(b"HELLO\n")
        self.protocol.dataReceived(b"?" * 65536)
        self.close(ConnectionLost())
        text = str(self.failureResultOf(self.protocol.done, ReplyMismatch).value)
        self.assertLess(len(text), 200, text[:1000])
        self.assertTrue(
            text.startswith("unexpected bytes at stream offset 6 while no reply was due: 3f 3f"),
            text,
        )

    def test_stopClosesCleanly(self) -> None:
        """
        C{stop()} closes the connection (it does not abort it) and cancels
        the pending send; C{done} fires with L{None} once the connection is
        gone, leaving no timer.
        """
        self.start(interval=1.0)
        self.protocol.dataReceived(b"HELLO\n")
        self.sent()
        self.protocol.stop()
        self.assertTrue(self.transport.disconnecting)
        self.assertFalse(self.transport.disconnected, "aborted instead of closed")
        self.assertNoResult(self.protocol.done)
        self.close()
        self.assertIsNone(self.successResultOf(self.protocol.done))
        self.assertEqual(self.sent(), b"")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stopIsBounded(self) -> None:
        """
        If the connection is still there C{STOP_GRACE} seconds after
        C{stop()}, it is aborted; C{done} still fires with L{None}.
        """
        self.start()
        self.protocol.stop()
        self.clock.advance(STOP_GRACE - 0.001)
        self.assertFalse(self.transport.disconnected)
        self.clock.advance(0.001)
        self.assertTrue(self.transport.disconnected)
        self.close(ConnectionLost())
        self.assertIsNone(self.successResultOf(self.protocol.done))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stopWithoutGraceAborts(self) -> None:
        """
        C{stop(grace=0)} (a second Ctrl-C) aborts at once, even after a
        first C{stop()}.
        """
        self.start()
        self.protocol.stop()
        self.assertFalse(self.transport.disconnected)
        self.protocol.stop(grace=0)
        self.assertTrue(self.transport.disconnected)
        self.close(ConnectionLost())
        self.assertIsNone(self.successResultOf(self.protocol.done))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_dataAfterStopIgnored(self) -> None:
        """
        A reply completing after C{stop()} neither counts nor schedules
        another message.
        """
        self.start(count=0, interval=1.0)
        self.protocol.stop()
        self.protocol.dataReceived(b"HELLO\n")
        self.clock.advance(1.0)
        self.assertEqual(self.replies, [])
        self.assertEqual(self.sent(), b"hello\n")
        self.close()
        self.assertIsNone(self.successResultOf(self.protocol.done))

    def test_fromSettings(self) -> None:
        """
        L{UppercaseClientProtocol.fromSettings} takes the message, count,
        interval and timeout from a L{ClientSettings}.
        """
        settings = ClientSettings(message=b"hi", count=2, interval=0.5, timeout=3.0)
        protocol = UppercaseClientProtocol.fromSettings(settings, clock=self.clock)
        self.assertEqual((protocol.count, protocol.interval, protocol.timeout), (2, 0.5, 3.0))
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.assertEqual(transport.value(), b"hi\n")

    def test_defaultsAreTheSettings(self) -> None:
        """
        A protocol built without arguments uses L{ClientSettings}' defaults.
        """
        protocol = UppercaseClientProtocol(clock=self.clock)
        defaults = ClientSettings()
        self.assertEqual(
            (protocol.count, protocol.interval, protocol.timeout),
            (defaults.count, defaults.interval, defaults.timeout),
        )


class ClientFactoryTests(SynchronousTestCase):
    """
    The factory shares one budget of replies across reconnections.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.factory = UppercaseClientFactory(
            ClientSettings(message=b"hi", count=3, interval=0), clock=self.clock
        )

    def connect(self) -> tuple[UppercaseClientProtocol, StringTransport]:
        protocol = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 9527))
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def test_reconnectCarriesOn(self) -> None:
        """
        After a lost connection, the next one sends only the replies still
        due, numbered on from the previous ones; C{finished} fires at the
        end.
        """
        first, _ = self.connect()
        first.dataReceived(b"HI\n")
        self.clock.advance(0)
        first.connectionLost(Failure(ConnectionLost()))
        self.assertNoResult(self.factory.finished)
        second, _ = self.connect()
        self.assertEqual(second.count, 2)
        second.dataReceived(b"HI\n")
        self.clock.advance(0)
        second.dataReceived(b"HI\n")
        self.assertEqual(self.factory.verified, 3)
        self.successResultOf(self.factory.finished)

    def test_mismatchFailsFinished(self) -> None:
        """
        A wrong reply fails C{finished}: reconnecting would not fix it.
        """
        protocol, _ = self.connect()
        protocol.dataReceived(b"NO\n")
        protocol.connectionLost(Failure(ConnectionLost()))
        self.failureResultOf(self.factory.finished, ReplyMismatch)

    def test_stopClosesCurrentConnectionCleanly(self) -> None:
        """
        C{stop()} closes the current connection cleanly: no "ended early"
        warning, and C{finished} stays unfired.
        """
        from twisted.logger import capturedLogs

        protocol, transport = self.connect()
        protocol.dataReceived(b"HI\n")
        with capturedLogs() as events:
            self.factory.stop()
            self.assertTrue(transport.disconnecting)
            self.assertFalse(transport.disconnected)
            protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(list(events), [])
        self.assertNoResult(self.factory.finished)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class SendProxyTests(SynchronousTestCase):
    """
    The ping-like client sends a PROXY header first with C{--send-proxy}.
    """

    def test_headerBeforeTheMessage(self) -> None:
        """
        With C{sendProxy="v1"}, the connection starts with the v1 header for
        its own addresses, then the message.
        """
        protocol = UppercaseClientProtocol.fromSettings(
            ClientSettings(sendProxy="v1", count=1), clock=Clock()
        )
        transport = StringTransport(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 40000),
            peerAddress=IPv4Address("TCP", "127.0.0.2", 9527),
        )
        protocol.makeConnection(transport)
        self.assertEqual(transport.value(), b"PROXY TCP4 127.0.0.1 127.0.0.2 40000 9527\r\nhello\n")

    def test_noHeaderByDefault(self) -> None:
        """
        Without it, the message is the first thing sent.
        """
        protocol = UppercaseClientProtocol.fromSettings(ClientSettings(count=1), clock=Clock())
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.assertEqual(transport.value(), b"hello\n")


class ErrorWordingTests(SynchronousTestCase):
    """
    The client's one-line errors count in words singular for one, with
    thousands separators.
    """

    def test_closedEarly(self) -> None:
        """
        C{after 0 of 1 reply}, C{after 1 reply} (no count wanted), C{after
        1,000 of 2,000 replies}.
        """
        self.assertEqual(
            str(ConnectionClosedEarly(0, 1, "Connection was closed cleanly.", "closed by server")),
            "connection closed by server after 0 of 1 reply",
        )
        self.assertEqual(
            str(ConnectionClosedEarly(1, 0, "x")), "connection closed after 1 reply: x"
        )
        self.assertEqual(
            str(ConnectionClosedEarly(1000, 2000, "x")),
            "connection closed after 1,000 of 2,000 replies: x",
        )

    def test_timedOut(self) -> None:
        """
        C{1 byte of it received}, C{1,200 bytes of it received}.
        """
        self.assertEqual(
            str(ReplyTimeout(1, 2, 1)), "reply 1 timed out after 2s (1 byte of it received)"
        )
        self.assertIn("(1,200 bytes of it received)", str(ReplyTimeout(1, 2, 1200)))


class PlainTests(SynchronousTestCase):
    """
    With C{plain} (C{--plain}), the client expects every reply unchanged,
    as an RFC 862 echo sends it; against the other echo, the mismatch line
    says what the replies look like.
    """

    def ping(self, plain: bool, serverPlain: bool) -> UppercaseClientProtocol:
        clock = Clock()
        settings = ClientSettings(message=b"Hello \xff", count=3, interval=0.5, plain=plain)
        protocol = UppercaseClientProtocol.fromSettings(settings, clock=clock)
        connection = connectInMemory(
            UppercaseFactory(clock, logData=False, idleTimeout=0, plain=serverPlain), protocol
        )
        for _ in range(3):
            clock.advance(0.5)
            connection.flush()
        return protocol

    def test_plainAgainstPlainEcho(self) -> None:
        """
        C{plain} against the plain echo: every reply verified.
        """
        protocol = self.ping(plain=True, serverPlain=True)
        self.assertIsNone(self.successResultOf(protocol.done))
        self.assertEqual((protocol.sent, protocol.verified), (3, 3))

    def test_uppercaseAgainstPlainEcho(self) -> None:
        """
        Without C{plain}, a plain echo's first reply is a mismatch whose
        line says the reply is unchanged, and suggests C{--plain}.
        """
        protocol = self.ping(plain=False, serverPlain=True)
        failure = self.failureResultOf(protocol.done, ReplyMismatch)
        self.assertEqual(
            str(failure.value),
            "reply 1 does not match at byte 1: expected 45, received 65; bytes 0-7: "
            'expected 48 45 4c 4c 4f 20 ff 0a "HELLO ..", received 48 65 6c 6c 6f 20 ff 0a '
            '"Hello .." (unchanged: is it a plain RFC 862 echo? try --plain)',
        )

    def test_plainAgainstUppercaseEcho(self) -> None:
        """
        With C{plain}, the uppercase echo's first reply is a mismatch whose
        line says the reply is uppercased.
        """
        protocol = self.ping(plain=True, serverPlain=False)
        failure = self.failureResultOf(protocol.done, ReplyMismatch)
        self.assertEqual(protocol.verified, 0)
        self.assertTrue(
            str(failure.value).endswith(
                "(uppercased: is it the uppercase echo? it expects no --plain)"
            ),
            str(failure.value),
        )

    def test_otherMismatchNoHint(self) -> None:
        """
        A reply wrong in another way gets no such hint.
        """
        clock = Clock()
        protocol = UppercaseClientProtocol(b"hello", clock=clock, plain=True)
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(b"hellx\n")
        protocol.connectionLost(Failure(ConnectionLost()))
        failure = self.failureResultOf(protocol.done, ReplyMismatch)
        self.assertTrue(str(failure.value).endswith('"hellx."'), str(failure.value))
