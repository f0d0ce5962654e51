"""
Specification of L{uppercase.server._admission}: the connection limits a server enforces, and its
refusals.
"""

from __future__ import annotations

from twisted.internet.address import IPv6Address
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from tests.unit.server.test_factory import client, formatted, quietFactory
from uppercase.testing import Refused, connectServer


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
