"""Prometheus metrics: what the collector counts."""

from __future__ import annotations

from prometheus_client import generate_latest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from uppercase._metrics import metricsRegistry
from uppercase.server import UppercaseFactory
from uppercase.testing import Refused, connectServer


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
        factory = UppercaseFactory(clock, logData=False, maxConnections=2, idleTimeout=10)
        registry = metricsRegistry(factory)
        _, first = connectServer(factory, IPv4Address("TCP", "192.0.2.1", 1))
        _, second = connectServer(factory, IPv4Address("TCP", "192.0.2.1", 2))
        self.assertRaises(Refused, connectServer, factory, IPv4Address("TCP", "192.0.2.1", 3))
        first.receive(b"abc")
        second.receive(b"hello")
        first.receiveEOF()
        clock.pump([1] * 15)
        second.receiveEOF()
        text = generate_latest(registry)
        self.assertEqual(sample(text, "uppercase_connections_total"), 2)
        self.assertEqual(sample(text, "uppercase_connections_active"), 0)
        self.assertEqual(sample(text, "uppercase_connections_rejected_total"), 1)
        self.assertEqual(sample(text, "uppercase_bytes_received_total"), 8)
        self.assertEqual(sample(text, "uppercase_bytes_sent_total"), 8)
        self.assertEqual(sample(text, "uppercase_idle_timeouts_total"), 1)
