"""
Specification of L{uppercase.load.metrics}: the Prometheus metrics of a load run or prober.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.unit.load.test_report import Collect
from tests.unit.load.test_run import FakeConnect
from uppercase.client._settings import ClientSettings
from uppercase.load.metrics import LoadCollector
from uppercase.load.run import LoadRun


class MetricsTests(SynchronousTestCase):
    """
    The prober's Prometheus metrics read the run's counts.
    """

    def test_exposition(self) -> None:
        """
        Verified and failed messages, errors by kind, open connections and
        a latency histogram whose buckets hold the recorded latencies.
        """
        settings = ClientSettings(rate=10, count=0)
        clock = Clock()
        connect = FakeConnect()
        run = LoadRun(settings, clock, connect, Collect(), reconnect=True)
        run.start()
        transport = connect.succeed()
        for _ in range(10):
            clock.advance(0.003)
            connect.answer(transport)
            clock.advance(0.097)
        clock.advance(0.001)
        run.stats.error("refused", 2)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(LoadCollector(run))
        text = generate_latest(registry).decode()
        self.assertIn("uppercase_client_messages_verified_total 10.0", text)
        self.assertIn("uppercase_client_messages_failed_total 0.0", text)
        self.assertIn("uppercase_client_messages_lost_total 0.0", text)
        self.assertIn("uppercase_client_messages_not_sent_total 0.0", text)
        self.assertIn('uppercase_client_errors_total{kind="refused"} 2.0', text)
        self.assertIn("uppercase_client_connections_open 1.0", text)
        # The first 10 (one second's) are in the histogram, 3 ms each.
        self.assertIn('uppercase_client_latency_seconds_bucket{le="0.0025"} 0.0', text)
        self.assertIn('uppercase_client_latency_seconds_bucket{le="0.005"} 10.0', text)
        self.assertIn('uppercase_client_latency_seconds_bucket{le="+Inf"} 10.0', text)
        run.stop()
