"""
Prometheus metrics of a load run or prober (C{--metrics ENDPOINT}), read
from the run's counts when Prometheus scrapes, and served with the same
limits as the server's metrics (L{uppercase.server._metrics}).
"""

from __future__ import annotations

from typing import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from twisted.internet.interfaces import IProtocolFactory, IReactorTime

from uppercase.load.result import RunView
from uppercase.server._metrics import registryFactory

__all__ = ["BUCKETS", "LoadCollector", "clientMetricsFactory"]

BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Upper bounds (seconds) of the latency histogram's buckets."""


DATAGRAM_HELP = {
    "sent": "UDP: datagrams sent.",
    "received": "UDP: datagrams received, of every kind.",
    "verified": "UDP: first replies in time that matched, byte for byte.",
    "corrupted": "UDP: first replies in time with an intact header and a wrong payload.",
    "lost": "UDP: datagrams with no reply within the timeout (late ones included).",
    "late": "UDP: first replies that arrived after their timeout (also counted lost).",
    "duplicated": "UDP: replies after the first for the same datagram.",
    "reordered": "UDP: first replies in time that arrived after a later datagram's.",
    "foreign": "UDP: datagrams with no header of the socket's, or for no datagram in flight.",
}
"""The help of each datagram count's counter (docs/load-testing.md)."""


class LoadCollector:
    """
    The run's counters, its open connections, and its latency histogram
    (from the run's HDR histogram, up to the last second).
    """

    def __init__(self, run: RunView) -> None:
        self._run = run

    def collect(self) -> Iterator[Metric]:
        stats = self._run.stats
        # The same counts, under the same names, as the summary and --json
        # (docs/load-testing.md): warm-up included.
        yield CounterMetricFamily(
            "uppercase_client_messages_sent", "Messages sent.", value=stats.sent
        )
        yield CounterMetricFamily(
            "uppercase_client_messages_verified",
            "Replies that arrived and matched, byte for byte.",
            value=stats.verified,
        )
        yield CounterMetricFamily(
            "uppercase_client_messages_failed",
            "Replies that arrived with a wrong byte.",
            value=stats.failed,
        )
        yield CounterMetricFamily(
            "uppercase_client_messages_lost",
            "Messages sent whose reply never came in full (connection lost, time-out).",
            value=stats.lost,
        )
        yield CounterMetricFamily(
            "uppercase_client_messages_not_sent",
            "Messages that fell due while there was no connection: never sent.",
            value=stats.notSent,
        )
        yield CounterMetricFamily(
            "uppercase_client_bytes_verified",
            "Bytes of replies verified, each way, warm-up included: the verified "
            "messages' and the streams'.",
            value=stats.verified * self._run.settings.size + stats.streamBytes,
        )
        errors = CounterMetricFamily(
            "uppercase_client_errors",
            "Connection and reply errors, by kind.",
            labels=["kind"],
        )
        for kind, count in sorted(stats.errors.items()):
            errors.add_metric([kind], count)
        yield errors
        yield GaugeMetricFamily(
            "uppercase_client_connections_open",
            "Connections open now.",
            value=len(self._run.protocols),
        )
        if stats.datagrams is not None:
            for name, value in stats.datagrams.asDict().items():
                yield CounterMetricFamily(
                    f"uppercase_client_datagrams_{name}",
                    DATAGRAM_HELP[name],
                    value=value,
                )
        counts = dict.fromkeys(BUCKETS, 0)
        total = 0
        sumSeconds = 0.0
        for millis, count in stats.total.buckets():
            seconds = millis / 1000
            total += count
            sumSeconds += seconds * count
            for bound in BUCKETS:
                if seconds <= bound:
                    counts[bound] += count
                    break
        cumulative = 0
        buckets = []
        for bound in BUCKETS:
            cumulative += counts[bound]
            buckets.append((repr(bound), cumulative))
        buckets.append(("+Inf", total))
        yield HistogramMetricFamily(
            "uppercase_client_latency_seconds",
            "Round-trip latency of verified messages (open loop: from the scheduled send time).",
            buckets=buckets,
            sum_value=sumSeconds,
        )


def clientMetricsFactory(run: RunView, clock: IReactorTime) -> IProtocolFactory:
    """
    The factory to listen with for the client's C{--metrics}.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LoadCollector(run))
    ProcessCollector(registry=registry)
    return registryFactory(registry, clock)
