"""
Specification of L{uppercase.echo._datagram}: the datagram echo, its bounds
(size, per-source and global rates, a bounded table of sources) and its
counts, driven in memory with a fake datagram transport and a fake clock.
"""

from __future__ import annotations

import errno
from typing import Any

from twisted.internet.error import MessageLengthError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from uppercase.echo import (
    DROP_REASONS,
    MAX_DATAGRAM,
    DatagramAdmission,
    DatagramCounts,
    DatagramEcho,
)
from uppercase.echo._datagram import TokenBucket

A = ("127.0.0.1", 4000)
B = ("127.0.0.2", 4001)


class FakeDatagramTransport:
    """
    A datagram transport in memory: what was written, to whom; C{fail}, if
    set, is raised by the next writes instead.
    """

    def __init__(self) -> None:
        self.written: list[tuple[bytes, Any]] = []
        self.fail: BaseException | None = None

    def write(self, datagram: bytes, addr: Any = None) -> None:
        if self.fail is not None:
            raise self.fail
        self.written.append((datagram, addr))


def echo(
    plain: bool = False, **limits: Any
) -> tuple[DatagramEcho, FakeDatagramTransport, Clock, list[Any]]:
    clock = Clock()
    seen: list[Any] = []
    protocol = DatagramEcho(
        DatagramAdmission(clock, **limits),
        DatagramCounts(),
        plain=plain,
        observe=lambda addr, size, reason: seen.append((addr, size, reason)),
    )
    transport = FakeDatagramTransport()
    protocol.makeConnection(transport)  # type: ignore[arg-type]
    return protocol, transport, clock, seen


def dropped(counts: DatagramCounts, **expected: int) -> dict[str, int]:
    return {
        **dict.fromkeys(DROP_REASONS, 0),
        **{k.replace("_", "-"): v for k, v in expected.items()},
    }


class EchoTests(SynchronousTestCase):
    """
    Each datagram goes back to its sender, uppercased or unchanged.
    """

    def test_uppercasedToSender(self) -> None:
        """
        A datagram comes back to the address it came from, ASCII-uppercased,
        every other byte unchanged; it is counted received and sent.
        """
        protocol, transport, _, _ = echo()
        protocol.datagramReceived(b"hello \xe9\x00z", A)
        protocol.datagramReceived(b"again", B)
        self.assertEqual(transport.written, [(b"HELLO \xe9\x00Z", A), (b"AGAIN", B)])
        counts = protocol.counts
        self.assertEqual(
            (counts.received, counts.receivedBytes, counts.sent, counts.sentBytes), (2, 14, 2, 14)
        )

    def test_plainUnchanged(self) -> None:
        """
        Plain, a datagram comes back byte for byte (RFC 862).
        """
        protocol, transport, _, _ = echo(plain=True)
        protocol.datagramReceived(b"hello", A)
        self.assertEqual(transport.written, [(b"hello", A)])

    def test_emptyDatagramEchoed(self) -> None:
        """
        A 0-byte datagram is echoed as a 0-byte datagram.
        """
        protocol, transport, _, seen = echo()
        protocol.datagramReceived(b"", A)
        self.assertEqual(transport.written, [(b"", A)])
        self.assertEqual(seen, [(A, 0, None)])

    def test_largestEchoed(self) -> None:
        """
        A datagram of L{MAX_DATAGRAM} (65,507) bytes is echoed whole.
        """
        protocol, transport, _, _ = echo()
        protocol.datagramReceived(b"a" * MAX_DATAGRAM, A)
        self.assertEqual(transport.written, [(b"A" * MAX_DATAGRAM, A)])

    def test_tooLargeDropped(self) -> None:
        """
        A datagram over L{MAX_DATAGRAM} bytes is dropped, counted as
        C{too-large}, and reported to the observer with that reason.
        """
        protocol, transport, _, seen = echo()
        protocol.datagramReceived(b"a" * (MAX_DATAGRAM + 1), A)
        self.assertEqual(transport.written, [])
        self.assertEqual(protocol.counts.dropped, dropped(protocol.counts, too_large=1))
        self.assertEqual(protocol.counts.receivedBytes, MAX_DATAGRAM + 1)
        self.assertEqual(seen, [(A, MAX_DATAGRAM + 1, "too-large")])

    def test_sendFailureDropped(self) -> None:
        """
        When the kernel refuses a reply (C{EAGAIN}, C{ENOBUFS}, a message
        too long), the datagram is dropped and counted C{send-failed}, and
        the echo goes on with the next one.
        """
        protocol, transport, _, _ = echo()
        for failure in (
            BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable"),
            OSError(errno.ENOBUFS, "No buffer space available"),
            MessageLengthError("message too long"),
        ):
            transport.fail = failure
            protocol.datagramReceived(b"x", A)
        transport.fail = None
        protocol.datagramReceived(b"y", A)
        self.assertEqual(transport.written, [(b"Y", A)])
        self.assertEqual(protocol.counts.dropped, dropped(protocol.counts, send_failed=3))
        self.assertEqual(protocol.counts.sent, 1)

    def test_oddDeliveryDropped(self) -> None:
        """
        Whatever raises while a datagram is handled (an address that is not
        a host and port, a transport error that is no socket error) drops
        that datagram, counted C{unreadable}; nothing is raised to the port.
        """
        protocol, transport, _, _ = echo(perSource=10)
        protocol.datagramReceived(b"x", None)
        transport.fail = ValueError("odd")
        protocol.datagramReceived(b"x", A)
        self.assertEqual(protocol.counts.dropped, dropped(protocol.counts, unreadable=2))
        self.assertEqual(protocol.counts.received, 2)

    def test_chosenSend(self) -> None:
        """
        C{chooseSend}, if given, is asked once, with the transport, when
        the echo starts, for the function that sends the replies; without
        it, replies go through C{transport.write}.
        """
        sent: list[tuple[bytes, Any]] = []
        asked: list[Any] = []

        def choose(transport: Any) -> Any:
            asked.append(transport)
            return lambda datagram, addr: sent.append((datagram, addr))

        protocol = DatagramEcho(DatagramAdmission(Clock()), DatagramCounts(), chooseSend=choose)
        transport = FakeDatagramTransport()
        protocol.makeConnection(transport)  # type: ignore[arg-type]
        protocol.datagramReceived(b"one", A)
        protocol.datagramReceived(b"two", B)
        self.assertEqual(asked, [transport])
        self.assertEqual(sent, [(b"ONE", A), (b"TWO", B)])
        self.assertEqual(transport.written, [])
        self.assertEqual(protocol.counts.sent, 2)

    def test_observeDropsOnly(self) -> None:
        """
        With C{observeDropsOnly}, the observer hears of the datagrams
        dropped and of no other; the counts are kept all the same.
        """
        seen: list[Any] = []
        protocol = DatagramEcho(
            DatagramAdmission(Clock()),
            DatagramCounts(),
            observe=lambda addr, size, reason: seen.append((addr, size, reason)),
            observeDropsOnly=True,
        )
        transport = FakeDatagramTransport()
        protocol.makeConnection(transport)  # type: ignore[arg-type]
        protocol.datagramReceived(b"echoed", A)
        protocol.datagramReceived(b"a" * (MAX_DATAGRAM + 1), B)
        transport.fail = OSError(errno.ENOBUFS, "No buffer space available")
        protocol.datagramReceived(b"refused", A)
        self.assertEqual(seen, [(B, MAX_DATAGRAM + 1, "too-large"), (A, 7, "send-failed")])
        counts = protocol.counts
        self.assertEqual((counts.received, counts.sent, counts.sentBytes), (3, 1, 6))

    def test_countsByName(self) -> None:
        """
        L{DatagramCounts.asDict} names every count, each reason's drops as
        C{dropped:REASON}.
        """
        protocol, _, _, _ = echo()
        protocol.datagramReceived(b"ab", A)
        protocol.datagramReceived(b"a" * (MAX_DATAGRAM + 1), A)
        counts = protocol.counts.asDict()
        self.assertEqual(counts["received"], 2)
        self.assertEqual(counts["sentBytes"], 2)
        self.assertEqual(counts["dropped:too-large"], 1)
        self.assertEqual(len(counts), 4 + len(DROP_REASONS))


class RateTests(SynchronousTestCase):
    """
    A source over its rate, or the server over its global one, has its
    datagrams dropped and counted; the rates refill with time.
    """

    def test_floodFromOneSourceLimited(self) -> None:
        """
        Past C{perSource} datagrams in a second from one host, its datagrams
        are dropped as C{source-rate}; another host is still served; a
        second later the flooding host is served again.
        """
        protocol, transport, clock, _ = echo(perSource=5)
        for _ in range(20):
            protocol.datagramReceived(b"f", A)
        protocol.datagramReceived(b"other", B)
        self.assertEqual(len([w for w in transport.written if w[1] == A]), 5)
        self.assertIn((b"OTHER", B), transport.written)
        self.assertEqual(protocol.counts.dropped, dropped(protocol.counts, source_rate=15))
        clock.advance(1)
        protocol.datagramReceived(b"f", A)
        self.assertEqual(transport.written[-1], (b"F", A))

    def test_sourceIsTheHost(self) -> None:
        """
        A source is its host: datagrams from many ports of one host share
        its rate.
        """
        protocol, transport, _, _ = echo(perSource=3)
        for port in range(10):
            protocol.datagramReceived(b"f", ("127.0.0.1", 5000 + port))
        self.assertEqual(len(transport.written), 3)

    def test_bytesPerSource(self) -> None:
        """
        Past C{bytesPerSource} bytes in a second from one host, its
        datagrams are dropped as C{source-rate}.
        """
        protocol, transport, _, _ = echo(bytesPerSource=1000)
        for _ in range(3):
            protocol.datagramReceived(b"a" * 400, A)
        self.assertEqual(len(transport.written), 2)
        self.assertEqual(protocol.counts.dropped, dropped(protocol.counts, source_rate=1))

    def test_globalRate(self) -> None:
        """
        Past C{total} datagrams in a second from all sources together, the
        rest are dropped as C{global-rate}.
        """
        protocol, transport, _, _ = echo(total=4)
        for i in range(10):
            protocol.datagramReceived(b"g", (f"10.0.0.{i}", 1))
        self.assertEqual(len(transport.written), 4)
        self.assertEqual(protocol.counts.dropped, dropped(protocol.counts, global_rate=6))

    def test_sourceTableBounded(self) -> None:
        """
        However many sources send, at most C{maxSources} are tracked; the
        one seen least recently is forgotten first.
        """
        clock = Clock()
        admission = DatagramAdmission(clock, perSource=1, maxSources=3)
        admission.check("10.0.0.1", 1)
        for i in range(2, 100):
            admission.check(f"10.0.0.{i % 250}", 1)
            admission.check("10.0.0.1", 1)  # kept: seen most recently
        self.assertEqual(admission.sources, 3)
        self.assertEqual(admission.check("10.0.0.1", 1), "source-rate")

    def test_unlimitedAsksNoAdmission(self) -> None:
        """
        With every rate 0, the echo does no admission work per datagram:
        the size is checked in place, and the admission is never asked.
        """

        class Counting(DatagramAdmission):
            asked = 0

            def check(self, host: str, size: int) -> str | None:
                Counting.asked += 1
                return super().check(host, size)

        for limits, asked in (({}, 0), ({"total": 100}, 2)):
            Counting.asked = 0
            protocol = DatagramEcho(Counting(Clock(), **limits), DatagramCounts())
            transport = FakeDatagramTransport()
            protocol.makeConnection(transport)  # type: ignore[arg-type]
            protocol.datagramReceived(b"x", A)
            protocol.datagramReceived(b"a" * (MAX_DATAGRAM + 1), A)
            self.assertEqual(Counting.asked, asked)
            self.assertEqual(transport.written, [(b"X", A)])
            self.assertEqual(protocol.counts.dropped, dropped(protocol.counts, too_large=1))

    def test_unlimited(self) -> None:
        """
        With every rate 0, nothing but the size limits, and no source is
        tracked.
        """
        protocol, transport, _, _ = echo()
        for _ in range(10000):
            protocol.datagramReceived(b"x", A)
        self.assertEqual(len(transport.written), 10000)
        self.assertEqual(protocol.admission.sources, 0)


class TokenBucketTests(SynchronousTestCase):
    """
    L{TokenBucket}: a rate with a burst of one second's worth.
    """

    def test_burstThenRate(self) -> None:
        """
        A full bucket lets one second's worth through at once, then refills
        at its rate, never above one second's worth.
        """
        bucket = TokenBucket(10, 0.0)
        self.assertEqual(sum(bucket.take(1, 0.0) for _ in range(20)), 10)
        self.assertEqual(sum(bucket.take(1, 0.5) for _ in range(20)), 5)
        self.assertEqual(sum(bucket.take(1, 100.0) for _ in range(20)), 10)
