"""
Prometheus metrics for C{--metrics ENDPOINT}: served at C{/metrics} by
twisted.web on the server's own reactor.

Nothing is counted on the data path beyond the per-connection byte counts
the server keeps anyway: the collector reads the factory's state when
Prometheus scrapes, in the reactor thread (prometheus_client's own Twisted
resource runs collectors in a thread pool, which would race the reactor).
"""

from __future__ import annotations

from typing import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.process_collector import ProcessCollector
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from .server import UppercaseFactory


class ServerCollector:
    """
    The server's counters and gauges, read from its factory at scrape time.
    """

    def __init__(self, factory: UppercaseFactory) -> None:
        self._factory = factory

    def collect(self) -> Iterator[Metric]:
        factory = self._factory
        received, sent = factory.byteCounts()
        yield CounterMetricFamily(
            "uppercase_connections", "Connections accepted.", value=factory.accepted
        )
        yield GaugeMetricFamily(
            "uppercase_connections_active",
            "Connections open now.",
            value=len(factory.connections),
        )
        yield CounterMetricFamily(
            "uppercase_connections_rejected",
            "Connections refused because of a limit or a shutdown.",
            value=factory.rejected,
        )
        yield CounterMetricFamily(
            "uppercase_idle_timeouts",
            "Connections closed for being idle.",
            value=factory.idleClosed,
        )
        yield CounterMetricFamily(
            "uppercase_bytes_received", "Bytes received from clients.", value=received
        )
        yield CounterMetricFamily("uppercase_bytes_sent", "Bytes sent back to clients.", value=sent)


def metricsRegistry(factory: UppercaseFactory) -> CollectorRegistry:
    """
    A registry with the server's metrics and the process's own (CPU, memory,
    open descriptors).
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(factory))
    ProcessCollector(registry=registry)
    return registry


class MetricsPage(Resource):
    """
    The Prometheus text exposition of a registry.
    """

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self._registry = registry

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        return generate_latest(self._registry)


def metricsSite(factory: UppercaseFactory) -> Site:
    """
    A web site with the metrics at C{/metrics}.
    """
    root = Resource()
    root.putChild(b"metrics", MetricsPage(metricsRegistry(factory)))
    site = Site(root)
    site.noisy = False
    return site
