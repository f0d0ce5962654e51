"""
Prometheus metrics for C{--metrics ENDPOINT}: served at C{/metrics} by
twisted.web on the server's own reactor, behind limits that keep the
endpoint from becoming a side door to the server's file descriptors.

Nothing is counted on the data path beyond the per-connection byte counts
the server keeps anyway: the collector reads the factory's state when
Prometheus scrapes, in the reactor thread (prometheus_client's own Twisted
resource runs collectors in a thread pool, which would race the reactor).

The endpoint serves one C{GET} (or C{HEAD}) per connection and bounds what
a client can hold: at most L{METRICS_MAX_CONNECTIONS} connections at once,
at most L{METRICS_MAX_PER_ADDRESS} of them from one address, at most
L{METRICS_REQUEST_TIMEOUT} seconds per connection from accept to close
(whatever the client sends meanwhile), no request body (refused with 413
before any of it is read), and twisted.web's own caps on the request line
and headers (16 KiB per line, 16 KiB in all, 500 headers).

A complete request wins over clients that send slowly or not at all: when
a limit is reached, the new connection takes the place of the one that has
waited longest without a complete request (which is aborted), and is
refused only if every connection it could take the place of has sent its
request.  However many slow clients keep connecting, a scrape that sends
its request at once is read before it becomes the longest waiting.
"""

from __future__ import annotations

import typing
from io import BytesIO
from typing import Any, Callable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.process_collector import ProcessCollector
from twisted.internet.interfaces import IAddress, IDelayedCall, IProtocolFactory, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.http import HTTPChannel
from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

from uppercase.echo._datagram import DatagramCounts
from uppercase.net.peer import describePeer, formatPeer
from uppercase.server._logbudget import RequestLog
from uppercase.server._refusals import RefusalLog
from uppercase.server._state import ServerState

log = Logger()

METRICS_MAX_CONNECTIONS = 8
"""Most connections open to the metrics endpoint at once.  Prometheus
scrapes a target with one request at a time, so a server, its
high-availability twin and a person with curl need three; 8 leaves room for
a scrape whose connection is still closing when the next one opens.  Over
the limit a new connection takes the place of the one that has waited
longest without a complete request, or is closed as soon as it is
accepted: clients that send slowly (or nothing) cannot keep a scrape out.
The connections aborted to make room close on the reactor's next turn, so
the endpoint holds at most L{METRICS_MAX_DESCRIPTORS} descriptors however
many clients connect (the echo listener keeps the rest)."""

METRICS_MAX_DESCRIPTORS = 2 * METRICS_MAX_CONNECTIONS
"""Most descriptors the endpoint holds at once: its open connections, and
as many again aborted to make room but not closed yet (past that, a new
connection is closed as soon as it is accepted until they are)."""

METRICS_MAX_PER_ADDRESS = METRICS_MAX_CONNECTIONS - 2
"""Most connections open at once from one address: a client that opens
more from one address takes the place of its own longest waiting
connection, so that two other addresses (a Prometheus and its
high-availability twin) always find room.  A scrape from the same address
as a flood of slow clients is still answered unless 6 more of them arrive
between its accept and the reading of its request (a reactor turn)."""

METRICS_ALPN = (b"http/1.1",)
"""The application protocol a TLS metrics endpoint names in ALPN (RFC 7301),
for clients that offer one (curl offers C{h2} and C{http/1.1})."""

METRICS_REQUEST_TIMEOUT = 10.0
"""Seconds a metrics connection may live, from accept to close, however
slowly or steadily it sends.  A scrape takes milliseconds; 10 seconds is
also Prometheus's default C{scrape_timeout}, so no scrape that Prometheus
still waits for is cut short."""

REFUSE_BODY = b"HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
"""The whole answer to a request with a body: the metrics need none."""


class ServerCollector:
    """
    The server's counters and gauges, read from its factory at scrape time.
    """

    def __init__(self, factory: ServerState) -> None:
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


class DatagramCollector:
    """
    The datagram echo's counters (L{uppercase.echo.DatagramCounts}), read
    from C{counts()} at scrape time: the same counts the UDP log lines sum.
    """

    def __init__(self, counts: Callable[[], DatagramCounts]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        counts = self._counts()
        yield CounterMetricFamily(
            "uppercase_datagrams_received", "UDP datagrams received.", value=counts.received
        )
        yield CounterMetricFamily(
            "uppercase_datagram_bytes_received",
            "Bytes received in UDP datagrams.",
            value=counts.receivedBytes,
        )
        yield CounterMetricFamily(
            "uppercase_datagrams_sent", "UDP datagrams echoed.", value=counts.sent
        )
        yield CounterMetricFamily(
            "uppercase_datagram_bytes_sent",
            "Bytes sent back in UDP datagrams.",
            value=counts.sentBytes,
        )
        dropped = CounterMetricFamily(
            "uppercase_datagrams_dropped",
            "UDP datagrams dropped, by reason (too-large, source-rate, global-rate, "
            "send-failed, unreadable).",
            labels=["reason"],
        )
        for reason, count in counts.dropped.items():
            dropped.add_metric([reason], count)
        yield dropped


class FaultCollector:
    """
    How many connections got each fault (C{--fault}), by kind, read from
    C{counts()} at scrape time: C{uppercase_faults_applied_total{kind}}.
    A kind never applied has no sample.
    """

    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        applied = CounterMetricFamily(
            "uppercase_faults_applied",
            "Connections that got each fault (--fault), by kind.",
            labels=["kind"],
        )
        for kind, count in self._counts().items():
            if count:
                applied.add_metric([kind], count)
        yield applied


def metricsRegistry(factory: ServerState, collectors: Sequence[Any] = ()) -> CollectorRegistry:
    """
    A registry with the server's metrics, any other C{collectors}, and the
    process's own (CPU, memory, open descriptors).
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(factory))
    for collector in collectors:
        registry.register(collector)
    ProcessCollector(registry=registry)
    return registry


class NothingElse(Resource):
    """
    A resource whose children are not found, unless put there.
    """

    def getChild(self, path: bytes, request: Request) -> IResource:
        return notFound()


class MetricsPage(NothingElse):
    """
    The Prometheus text exposition of a registry, at its own path only
    (C{/metrics/anything} is not found).  C{GET} and C{HEAD}; any other
    method is answered 405.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self._registry = registry

    def render(self, request: Request) -> bytes:
        if request.method not in (b"GET", b"HEAD"):
            # Resource.render would answer 501 to methods twisted.web does
            # not know (DELETE, PUT...): every other method is not allowed.
            request.setResponseCode(405)
            request.setHeader(b"Allow", b"GET, HEAD")
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            return b"Method Not Allowed\n"
        return super().render(request)

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        return generate_latest(self._registry)


class MetricsRequest(Request):
    """
    A request that may have no body.

    twisted.web calls L{gotLength} once the headers are in, before reading
    any of the body, and would keep a body of unknown length (chunked) or of
    100 kB or more in a temporary file.  Here a request that announces a
    body is answered 413 and its connection closed at that point; nothing
    of the body is stored, ever.
    """

    channel: MetricsChannel

    def gotLength(self, length: int | None) -> None:
        # An empty buffer for twisted.web to read the (absent) body from.
        self.content = BytesIO()
        if length != 0:
            # Answered here: the channel must not invite the body with
            # "100 Continue" after the 413 (it looks for Expect just after).
            self.requestHeaders.removeHeader(b"Expect")
            self.channel.refuseBody(self)

    def handleContentChunk(self, data: bytes) -> None:
        """
        Drop body bytes: none is accepted (see L{gotLength}), and whatever
        arrives before the connection closes is not kept.
        """


class MetricsChannel(HTTPChannel):
    """
    One request per connection: every response says C{Connection: close}
    and the connection is closed once it is written.
    """

    site: MetricsSite
    transport: Any

    def allHeadersReceived(self) -> None:
        # The request is complete (a body is refused, see MetricsRequest):
        # this connection waits no more, and is not aborted to make room.
        self.transport.requestComplete()
        super().allHeadersReceived()

    def checkPersistence(self, request: Request, version: bytes) -> bool:
        request.responseHeaders.setRawHeaders(b"Connection", [b"close"])
        return False

    def refuseBody(self, request: Request) -> None:
        """
        Answer C{request}, which announced a body, with 413 and close.
        """
        peer = formatPeer(*describePeer(request.getClientAddress()))
        self.site.refusals.refused(peer, "metrics request with a body")
        self.transport.write(REFUSE_BODY)
        self.loseConnection()


ACCESS_LINE = 300
"""The longest access-log line, in characters: a request's path, referrer
and user agent are the client's to make as long as it likes."""


def accessLine(timestamp: str, request: http.Request) -> str:
    """
    twisted.web's combined-format access-log line for C{request}, cut to
    L{ACCESS_LINE} characters (the cut marked with an ellipsis).
    """
    line: str = http.combinedLogFormatter(timestamp, request)
    if len(line) > ACCESS_LINE:
        line = line[: ACCESS_LINE - 1] + "\N{HORIZONTAL ELLIPSIS}"
    return line


class MetricsSite(Site):
    """
    The metrics resource tree served by L{MetricsChannel}s and
    L{MetricsRequest}s, without twisted.web's idle timeout (the deadline of
    L{DeadlineProtocol} replaces it), with its access log bounded by a
    L{RequestLog}.

    @ivar refusals: where refused requests are logged.
    @ivar requests: the budget of access-log lines.
    """

    protocol = MetricsChannel  # type: ignore[assignment]
    requestFactory = MetricsRequest
    noisy = False
    purpose = "metrics"
    """What the endpoint serves, as its log lines name it."""

    def __init__(self, resource: Resource, refusals: RefusalLog, clock: IReactorTime) -> None:
        super().__init__(resource, timeout=None, reactor=clock, logFormatter=accessLine)
        self.refusals = refusals
        self.requests = RequestLog(clock, self.purpose)

    def log(self, request: http.Request) -> None:
        """
        Log C{request}'s access-log line (twisted.web's combined format)
        within the budget; past it, count it.
        """
        if self.requests.admit():
            super().log(request)
        else:
            self.requests.folded()


class DeadlineProtocol(ProtocolWrapper):
    """
    A connection that is aborted L{MetricsFactory.requestTimeout} seconds
    after it was accepted, whatever it has sent or been sent meanwhile, and
    that reads nothing more once it is closing.  Until its request is
    complete it is waiting, and may be aborted to make room (see
    L{MetricsFactory}).

    @ivar host: the client's host, for the per-address limit.
    @ivar peer: the client's address as people write it.
    """

    factory: MetricsFactory
    transport: Any
    host = "?"
    peer = "?"
    _deadline: IDelayedCall | None = None

    def connectionMade(self) -> None:
        self._deadline = self.factory.clock.callLater(self.factory.requestTimeout, self._expire)
        self.factory.opened(self)

    def requestComplete(self) -> None:
        """
        The request has arrived whole: this connection waits no more.
        """
        self.factory.completed(self)

    def dataReceived(self, data: bytes) -> None:
        if self.disconnecting:
            return
        super().dataReceived(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None
        self.factory.closed(self)
        super().connectionLost(reason)

    def _expire(self) -> None:
        self._deadline = None
        log.info(
            "Aborting {purpose} connection from {peer}: still open after {timeout:g} seconds",
            purpose=self.factory.purpose,
            peer=formatPeer(*describePeer(self.getPeer())),
            timeout=self.factory.requestTimeout,
        )
        self.transport.abortConnection()


class MetricsFactory(WrappingFactory):
    """
    Serve the metrics site on at most C{maxConnections} connections at once,
    at most C{maxPerAddress} of them from one address, each for at most
    C{requestTimeout} seconds.

    Over a limit, a new connection takes the place of the connection that
    has waited longest without a complete request (from the same address,
    if the per-address limit is the one reached), which is aborted; if
    every such connection has sent its request, the new one is closed as
    soon as it is accepted.  Both are logged once per burst.  An aborted
    connection closes on the reactor's next turn; until it does, it counts
    against a bound of C{2 * maxConnections} descriptors.
    """

    protocol = DeadlineProtocol
    noisy = False
    purpose = "metrics"
    """What the endpoint serves, as its log lines name it."""

    def __init__(
        self,
        site: Site,
        clock: IReactorTime,
        refusals: RefusalLog,
        maxConnections: int,
        requestTimeout: float,
        maxPerAddress: int | None = None,
    ) -> None:
        super().__init__(site)
        self.clock = clock
        self.refusals = refusals
        self.maxConnections = maxConnections
        self.maxPerAddress = max(1, maxConnections - 2) if maxPerAddress is None else maxPerAddress
        self.requestTimeout = requestTimeout
        # The connections without a complete request, longest waiting first
        # (a dict keeps the order its keys were added in).
        self._waiting: dict[DeadlineProtocol, None] = {}
        # Connections open and not aborted to make room, by host.
        self._byHost: dict[str, int] = {}
        self._live = 0
        # Connections aborted to make room, until they are closed.
        self._evicted: set[DeadlineProtocol] = set()

    def logPrefix(self) -> str:
        """
        Name the port in Twisted's "... starting on PORT" log line.
        """
        return "MetricsSite"

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:  # type: ignore[override]
        host, port = describePeer(addr) if addr is not None else ("?", None)
        peer = formatPeer(host, port) if addr is not None else "?"
        refusal = self._makeRoom(host)
        if refusal is not None:
            self.refusals.refused(peer, refusal)
            # A listening port closes the socket before accepting the next
            # one, so a flood of refusals never holds more than one
            # descriptor (on ssl: endpoints too; see
            # uppercase.server._tls.RefusingTLSFactory).
            return None
        protocol = typing.cast(DeadlineProtocol, super().buildProtocol(addr))
        protocol.host, protocol.peer = host, peer
        return protocol

    def _makeRoom(self, host: str) -> str | None:
        """
        Make room for a connection from C{host} if a limit is reached, by
        aborting the connection that has waited longest without a complete
        request (from C{host}, if its own limit is the one reached).

        @return: L{None} if there is room, or why there is none.
        """
        if len(self.protocols) >= 2 * self.maxConnections:
            return f"{self.maxConnections} {self.purpose} connections still closing"
        if self._byHost.get(host, 0) >= self.maxPerAddress:
            victim = next((p for p in self._waiting if p.host == host), None)
            if victim is None:
                return f"{self.maxPerAddress} {self.purpose} connections from {host} already open"
        elif self._live >= self.maxConnections:
            victim = next(iter(self._waiting), None)
            if victim is None:
                return f"{self.maxConnections} {self.purpose} connections already open"
        else:
            return None
        self._forget(victim)
        self._evicted.add(victim)
        self.refusals.refused(
            victim.peer,
            f"aborted to make room, the longest without a complete {self.purpose} request",
        )
        victim.transport.abortConnection()
        return None

    def opened(self, protocol: DeadlineProtocol) -> None:
        """
        Count C{protocol}, waiting for its request (from its
        C{connectionMade}).
        """
        self._waiting[protocol] = None
        self._byHost[protocol.host] = self._byHost.get(protocol.host, 0) + 1
        self._live += 1

    def completed(self, protocol: DeadlineProtocol) -> None:
        """
        C{protocol}'s request is complete: it waits no more.
        """
        self._waiting.pop(protocol, None)

    def closed(self, protocol: DeadlineProtocol) -> None:
        """
        Forget C{protocol} (from its C{connectionLost}).
        """
        if protocol in self._evicted:
            self._evicted.discard(protocol)
        else:
            self._forget(protocol)

    def _forget(self, protocol: DeadlineProtocol) -> None:
        self._waiting.pop(protocol, None)
        left = self._byHost.get(protocol.host, 0) - 1
        if left > 0:
            self._byHost[protocol.host] = left
        else:
            self._byHost.pop(protocol.host, None)
        self._live -= 1

    def stopFactory(self) -> None:
        self.refusals.flush()


def metricsFactory(
    factory: ServerState,
    clock: IReactorTime,
    *,
    maxConnections: int = METRICS_MAX_CONNECTIONS,
    requestTimeout: float = METRICS_REQUEST_TIMEOUT,
    maxPerAddress: int = METRICS_MAX_PER_ADDRESS,
    collectors: Sequence[Any] = (),
) -> IProtocolFactory:
    """
    The factory to listen with for C{--metrics}: the metrics of C{factory}
    (the server's) at C{/metrics}, with the limits described in this
    module's docstring.

    @param clock: the reactor's time, for the deadlines and the refusal log.
    """
    root = NothingElse()
    root.putChild(b"metrics", MetricsPage(metricsRegistry(factory, collectors)))
    refusals = RefusalLog(clock)
    site = MetricsSite(root, refusals, clock)
    return MetricsFactory(site, clock, refusals, maxConnections, requestTimeout, maxPerAddress)


def metricsSite(factory: ServerState) -> IProtocolFactory:
    """
    L{metricsFactory} on the global reactor, for callers that do not pass
    their reactor yet.
    """
    from twisted.internet import reactor

    return metricsFactory(factory, reactor)


def registryFactory(
    registry: CollectorRegistry,
    clock: IReactorTime,
    *,
    maxConnections: int = METRICS_MAX_CONNECTIONS,
    requestTimeout: float = METRICS_REQUEST_TIMEOUT,
    maxPerAddress: int = METRICS_MAX_PER_ADDRESS,
) -> IProtocolFactory:
    """
    Serve any C{registry} at C{/metrics} as L{metricsFactory} serves the
    server's, with the same limits (the client's C{--metrics} uses it).
    """
    root = NothingElse()
    root.putChild(b"metrics", MetricsPage(registry))
    refusals = RefusalLog(clock)
    site = MetricsSite(root, refusals, clock)
    return MetricsFactory(site, clock, refusals, maxConnections, requestTimeout, maxPerAddress)
