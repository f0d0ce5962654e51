"""
Tests for L{uppercase.client._udp}: C{udp:} endpoint strings, and the
ping-like client over a fake datagram transport with a fake clock.
"""

from __future__ import annotations

from typing import Any, List, Tuple

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from uppercase.client._connect import checkDescription
from uppercase.client._datagram import encode, parseHeader
from uppercase.client._udp import DatagramPing, isDatagram, parseUDP


class FakePort:
    """
    A connected UDP port in memory: what is written is kept; closing it
    stops its protocol, as Twisted's port does.
    """

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self.written: List[bytes] = []
        self.listening = True
        protocol.makeConnection(self)

    def write(self, datagram: bytes) -> None:
        self.written.append(datagram)

    def stopListening(self) -> None:
        self.listening = False
        self.protocol.doStop()

    def echo(self, *indices: int, change: Any = bytes.upper) -> None:
        """
        Deliver, in that order, the uppercased (or changed) datagrams
        written at C{indices}.
        """
        for i in indices:
            self.protocol.datagramReceived(change(self.written[i]), ("127.0.0.1", 9527))


class ParseTests(SynchronousTestCase):
    def test_forms(self) -> None:
        """
        C{udp:HOST:PORT}, C{udp:[::1]:PORT} and the keyword form give the
        host and the port.
        """
        self.assertEqual(parseUDP("udp:127.0.0.1:9527"), ("127.0.0.1", 9527))
        self.assertEqual(parseUDP("udp:[::1]:9527"), ("::1", 9527))
        self.assertEqual(parseUDP("UDP:host=example.org:port=7"), ("example.org", 7))
        self.assertTrue(isDatagram("UDP:x:1"))
        self.assertFalse(isDatagram("tcp:x:1"))

    def test_bad(self) -> None:
        """
        A missing port, a port out of range, an IPv6 address without
        brackets or an unknown keyword: one line saying so, from
        L{checkDescription} too (where the options are checked).
        """
        for description, words in [
            ("udp:127.0.0.1", "needs a host and a port"),
            ("udp:127.0.0.1:0", "port must be from 1 to 65535, not '0'"),
            ("udp:127.0.0.1:x", "port must be from 1 to 65535, not 'x'"),
            ("udp:::1:9527", "needs brackets"),
            ("udp:127.0.0.1:9:timeout=3", "not timeout"),
        ]:
            for check in (parseUDP, checkDescription):
                with self.assertRaises(ValueError) as raised:
                    check(description)
                self.assertIn(words, str(raised.exception))
                self.assertNotIn("\n", str(raised.exception))


def ping(**kwargs: Any) -> Tuple[DatagramPing, FakePort, Clock, List[Tuple[int, bytes, float]]]:
    clock = Clock()
    replies: List[Tuple[int, bytes, float]] = []
    settings: dict[str, Any] = dict(count=3, interval=1.0, timeout=2.0)
    settings.update(kwargs)
    protocol = DatagramPing(b"hello", clock=clock, onReply=lambda *r: replies.append(r), **settings)
    port = FakePort(protocol)
    protocol.begin()
    return protocol, port, clock, replies


class PingTests(SynchronousTestCase):
    def test_allVerified(self) -> None:
        """
        One datagram per interval, whatever came back, each numbered; every
        right reply is told with its round-trip time; done once the last
        is answered, the socket closed and no failure.
        """
        protocol, port, clock, replies = ping()
        self.assertEqual(port.written, [encode(1, 1, b"hello\n")])
        clock.advance(0.25)
        port.echo(0)
        clock.advance(0.75)
        clock.advance(1.0)
        self.assertEqual([parseHeader(d) for d in port.written], [(1, 1), (1, 2), (1, 3)])
        port.echo(2, 1)
        self.assertEqual(
            [r[:2] for r in replies], [(1, b"HELLO\n"), (3, b"HELLO\n"), (2, b"HELLO\n")]
        )
        self.assertEqual(replies[0][2], 0.25)
        self.assertIsNone(self.successResultOf(protocol.done))
        self.assertIsNone(protocol.failure)
        self.assertFalse(port.listening)
        self.assertEqual(protocol.tracker.counts.reordered, 1)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_plain(self) -> None:
        """
        With C{plain}, the reply due is what was sent; an uppercased one is
        corrupted, and the run fails saying where.
        """
        protocol, port, clock, replies = ping(count=1, plain=True)
        port.echo(0, change=bytes)
        self.assertEqual(len(replies), 1)
        protocol, port, clock, replies = ping(count=1, plain=True)
        port.echo(0)
        self.successResultOf(protocol.done)
        self.assertEqual(replies, [])
        self.assertIn("reply 1 does not match at byte 26", str(protocol.failure))

    def test_otherEchoHinted(self) -> None:
        """
        A reply that looks like the other echo's says so, as over TCP:
        unchanged where uppercase was due (try C{--plain}), uppercased where
        C{--plain} expected it unchanged.
        """
        protocol, port, clock, replies = ping(count=1)
        port.echo(0, change=bytes)
        self.successResultOf(protocol.done)
        self.assertTrue(
            str(protocol.failure).endswith("(unchanged: is it a plain RFC 862 echo? try --plain)"),
            str(protocol.failure),
        )
        protocol, port, clock, replies = ping(count=1, plain=True)
        port.echo(0)
        self.successResultOf(protocol.done)
        self.assertTrue(
            str(protocol.failure).endswith(
                "(uppercased: is it the uppercase echo? it expects no --plain)"
            ),
            str(protocol.failure),
        )

    def test_lost(self) -> None:
        """
        A datagram with no reply within the timeout is lost; the run goes on
        to the end, then fails saying how many were lost.
        """
        protocol, port, clock, replies = ping()
        clock.advance(1.0)
        port.echo(1)
        clock.advance(0.999)
        self.assertEqual(protocol.tracker.counts.lost, 0)
        clock.advance(0.001)
        self.assertEqual(protocol.tracker.counts.lost, 1)
        self.assertNoResult(protocol.done)
        port.echo(2)
        self.successResultOf(protocol.done)
        self.assertEqual(protocol.failure, "1 of 3 datagrams lost (33.3%)")

    def test_late(self) -> None:
        """
        A reply after its timeout is late; a reply to a datagram not sent is
        foreign; the run fails with the first wrong datagram.
        """
        protocol, port, clock, replies = ping(count=2, interval=0.5, timeout=0.5)
        clock.advance(0.6)
        port.echo(0)
        protocol.datagramReceived(b"HELLO\n", ("127.0.0.1", 9527))
        port.echo(1)
        self.successResultOf(protocol.done)
        counts = protocol.tracker.counts
        self.assertEqual((counts.late, counts.lost, counts.foreign), (1, 1, 1))
        self.assertIn("no header of ours", str(protocol.failure))

    def test_refused(self) -> None:
        """
        ICMP port unreachable ends the run at once, what was in flight lost.
        """
        protocol, port, clock, replies = ping()
        protocol.connectionRefused()
        self.successResultOf(protocol.done)
        self.assertEqual(protocol.failure, "Connection refused")
        self.assertEqual(protocol.tracker.counts.lost, 1)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_socketClosedUnderIt(self) -> None:
        """
        A socket the reactor closes (epoll, on an ICMP error) ends the run
        as refused.
        """
        protocol, port, clock, replies = ping()
        port.stopListening()
        self.successResultOf(protocol.done)
        self.assertEqual(protocol.failure, "Connection refused")

    def test_stop(self) -> None:
        """
        L{DatagramPing.stop} sends nothing more and waits for nothing more.
        """
        protocol, port, clock, replies = ping(count=0)
        clock.pump([1.0] * 5)
        protocol.stop()
        self.successResultOf(protocol.done)
        self.assertEqual(len(port.written), 6)
        self.assertEqual(clock.getDelayedCalls(), [])


class DescribeTests(SynchronousTestCase):
    def test_lengths(self) -> None:
        """
        A reply shorter or longer than the one due (a truncated datagram,
        or two joined by a relay) is described in one line, saying where
        one side has no more bytes.
        """
        for payload, words in [
            (b"HEL", "byte 29: expected 4c, received no more bytes"),
            (b"HELLO\nHELLO\n", "byte 32: expected no more bytes, received 48"),
        ]:
            protocol, port, clock, replies = ping(count=1)
            port.echo(0, change=lambda d, p=payload: d[:26] + p)
            self.successResultOf(protocol.done)
            self.assertIn(words, str(protocol.failure))
