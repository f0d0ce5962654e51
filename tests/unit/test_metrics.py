"""Prometheus metrics: what the collector counts."""

from __future__ import annotations

from prometheus_client import generate_latest
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from uppercase._metrics import metricsRegistry
from uppercase.server import UppercaseFactory

from ._transports import BufferingTransport


def sample(exposition: bytes, name: str) -> float:
    for line in exposition.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in:\n{exposition.decode()}")


class CollectorTests(SynchronousTestCase):
    """
    The collector reports the factory's counts at scrape time.
    """

    def test_counts(self) -> None:
        """
        Connections (accepted, open, refused, idle-closed) and bytes (over
        open and closed connections) are all counted.
        """
        clock = Clock()
        factory = UppercaseFactory(clock=clock, logData=False, maxConnections=2, idleTimeout=10)
        registry = metricsRegistry(factory)
        protocols = []
        for port in (1, 2):
            protocol = factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", port))
            protocol.makeConnection(BufferingTransport(port=port))
            protocols.append(protocol)
        self.assertIsNone(factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", 3)))
        protocols[0].dataReceived(b"abc")
        protocols[1].dataReceived(b"hello")
        protocols[0].connectionLost(Failure(ConnectionDone()))
        clock.pump([1] * 15)
        text = generate_latest(registry)
        self.assertEqual(sample(text, "uppercase_connections_total"), 2)
        self.assertEqual(sample(text, "uppercase_connections_active"), 1)
        self.assertEqual(sample(text, "uppercase_connections_rejected_total"), 1)
        self.assertEqual(sample(text, "uppercase_bytes_received_total"), 8)
        self.assertEqual(sample(text, "uppercase_bytes_sent_total"), 8)
        self.assertEqual(sample(text, "uppercase_idle_timeouts_total"), 1)
