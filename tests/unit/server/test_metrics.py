"""Prometheus metrics: what the collector counts, and how the endpoint bounds its clients."""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from prometheus_client import generate_latest
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionAborted, ConnectionDone
from twisted.internet.interfaces import IProtocol, IProtocolFactory
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from uppercase.echo import DatagramCounts
from uppercase.server._logbudget import REQUESTS_PER_SECOND
from uppercase.server._metrics import (
    ACCESS_LINE,
    METRICS_MAX_CONNECTIONS,
    METRICS_MAX_PER_ADDRESS,
    METRICS_REQUEST_TIMEOUT,
    DatagramCollector,
    metricsFactory,
    metricsRegistry,
    metricsSite,
)
from uppercase.server._refusals import WINDOW

try:
    import tracemalloc
except ImportError:  # PyPy has no tracemalloc
    tracemalloc = None  # type: ignore[assignment]

SCRAPE = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\nAccept: text/plain\r\n\r\n"


def sample(exposition: bytes, name: str) -> float:
    for line in exposition.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in:\n{exposition.decode()}")


class StubServer:
    """
    What the collector reads of the server's factory, with fixed values.
    """

    accepted = 7
    connections = frozenset({"a", "b"})
    rejected = 3
    idleClosed = 2

    def byteCounts(self) -> tuple[int, int]:
        return 1000, 900


class Response:
    """
    An HTTP response as written to a transport: status, headers, body.
    """

    def __init__(self, data: bytes) -> None:
        head, _, self.body = data.partition(b"\r\n\r\n")
        statusLine, *lines = head.split(b"\r\n")
        self.status = int(statusLine.split()[1])
        self.headers = {}
        for line in lines:
            name, _, value = line.partition(b":")
            self.headers[name.strip().lower()] = value.strip()


class Growth:
    """
    How many bytes of memory were allocated and still held over a block
    (0 where the implementation cannot trace allocations).
    """

    held = 0


@contextmanager
def memoryGrowth() -> Iterator[Growth]:
    growth = Growth()
    if tracemalloc is None:
        yield growth
        return
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        yield growth
        growth.held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def fragments(data: bytes, size: int) -> Iterator[bytes]:
    """
    C{data} in pieces of C{size} bytes, as a TCP stream may deliver it.
    """
    for start in range(0, len(data), size):
        yield data[start : start + size]


class AbortableTransport(StringTransport):
    """
    A L{StringTransport} that tells an abort from a close: C{aborted}.
    """

    aborted = False

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


class Endpoint:
    """
    A metrics factory on a L{Clock}, and the connections made to it.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.clock = Clock()
        self.factory = metricsFactory(StubServer(), self.clock, **kwargs)
        self._port = 40000

    def connect(
        self, through: IProtocolFactory | None = None, host: str = "192.0.2.7"
    ) -> tuple[IProtocol, AbortableTransport]:
        """
        Accept one connection from C{host}, on the metrics factory or on a
        factory wrapping it.
        """
        protocol, transport = self.tryConnect(through, host)
        assert protocol is not None, "refused"
        return protocol, transport

    def tryConnect(
        self, through: IProtocolFactory | None = None, host: str = "192.0.2.7"
    ) -> tuple[IProtocol | None, AbortableTransport]:
        """
        Accept one connection from C{host}, unless the factory gives no
        protocol for it.
        """
        self._port += 1
        peer = IPv4Address("TCP", host, self._port)
        transport = AbortableTransport(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 9100), peerAddress=peer
        )
        protocol = (through or self.factory).buildProtocol(peer)
        if protocol is not None:
            protocol.makeConnection(transport)
        return protocol, transport

    def request(self, data: bytes, size: int = 7) -> tuple[IProtocol, AbortableTransport]:
        """
        Connect and send C{data} in fragments of C{size} bytes.
        """
        protocol, transport = self.connect()
        for fragment in fragments(data, size):
            protocol.dataReceived(fragment)
        return protocol, transport


def close(protocol: IProtocol, transport: AbortableTransport) -> None:
    """
    Report to C{protocol} the close its transport was asked for.
    """
    reason = ConnectionAborted() if transport.aborted else ConnectionDone()
    protocol.connectionLost(Failure(reason))


class CollectorTests(SynchronousTestCase):
    """
    The collector reports the factory's counts at scrape time.
    """

    def test_counts(self) -> None:
        """
        Connections (accepted, open, refused, idle-closed) and bytes
        (received, sent) are read from the server's factory.
        """
        text = generate_latest(metricsRegistry(StubServer()))
        self.assertEqual(sample(text, "uppercase_connections_total"), 7)
        self.assertEqual(sample(text, "uppercase_connections_active"), 2)
        self.assertEqual(sample(text, "uppercase_connections_rejected_total"), 3)
        self.assertEqual(sample(text, "uppercase_idle_timeouts_total"), 2)
        self.assertEqual(sample(text, "uppercase_bytes_received_total"), 1000)
        self.assertEqual(sample(text, "uppercase_bytes_sent_total"), 900)

    def test_datagrams(self) -> None:
        """
        The datagram echo's counts (received, sent, their bytes, and drops
        by reason) are read from its counts at scrape time.
        """
        counts = DatagramCounts()
        registry = metricsRegistry(StubServer(), [DatagramCollector(lambda: counts)])
        counts.received, counts.receivedBytes, counts.sent, counts.sentBytes = 9, 90, 6, 60
        counts.dropped["source-rate"] = 3
        text = generate_latest(registry)
        self.assertEqual(sample(text, "uppercase_datagrams_received_total"), 9)
        self.assertEqual(sample(text, "uppercase_datagram_bytes_received_total"), 90)
        self.assertEqual(sample(text, "uppercase_datagrams_sent_total"), 6)
        self.assertEqual(sample(text, "uppercase_datagram_bytes_sent_total"), 60)
        self.assertIn(
            b'uppercase_datagrams_dropped_total{reason="source-rate"} 3.0', text.splitlines()
        )
        self.assertIn(
            b'uppercase_datagrams_dropped_total{reason="too-large"} 0.0', text.splitlines()
        )

    def test_readAtScrapeTime(self) -> None:
        """
        The counts are those of the moment of the scrape.
        """
        server = StubServer()
        registry = metricsRegistry(server)
        server.accepted = 8
        self.assertEqual(sample(generate_latest(registry), "uppercase_connections_total"), 8)


class ScrapeTests(SynchronousTestCase):
    """
    C{GET /metrics} is answered with the Prometheus text, then the
    connection is closed; everything else is answered with an error.
    """

    def test_scrape(self) -> None:
        """
        A scrape sent in fragments is answered 200 with the Prometheus text
        and C{Connection: close}, and the connection is closed; once it is,
        nothing stays scheduled.
        """
        endpoint = Endpoint()
        protocol, transport = endpoint.request(SCRAPE)
        response = Response(transport.value())
        self.assertEqual(response.status, 200)
        self.assertTrue(response.headers[b"content-type"].startswith(b"text/plain"))
        self.assertEqual(response.headers[b"connection"], b"close")
        self.assertEqual(sample(response.body, "uppercase_connections_total"), 7)
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.aborted)
        close(protocol, transport)
        self.assertEqual(endpoint.clock.getDelayedCalls(), [])

    def test_http10(self) -> None:
        """
        An HTTP/1.0 scrape is answered too, and closed.
        """
        endpoint = Endpoint()
        _, transport = endpoint.request(b"GET /metrics HTTP/1.0\r\n\r\n")
        response = Response(transport.value())
        self.assertEqual(response.status, 200)
        self.assertEqual(response.headers[b"connection"], b"close")
        self.assertTrue(transport.disconnecting)

    def test_head(self) -> None:
        """
        C{HEAD /metrics} is answered 200 without a body.
        """
        endpoint = Endpoint()
        _, transport = endpoint.request(b"HEAD /metrics HTTP/1.1\r\n\r\n")
        response = Response(transport.value())
        self.assertEqual(response.status, 200)
        self.assertEqual(response.body, b"")
        self.assertTrue(transport.disconnecting)

    def test_oneRequestPerConnection(self) -> None:
        """
        A second request pipelined after the first is not answered: the
        connection closes after the first answer.
        """
        endpoint = Endpoint()
        _, transport = endpoint.request(SCRAPE + SCRAPE, size=len(SCRAPE) * 2)
        self.assertEqual(transport.value().count(b"HTTP/1.1 200 OK"), 1)
        self.assertTrue(transport.disconnecting)

    def test_notFound(self) -> None:
        """
        Other paths, including below C{/metrics}, are not found (404).
        """
        endpoint = Endpoint()
        for path in (b"/", b"/other", b"/metrics/more", b"/metrics/"):
            protocol, transport = endpoint.request(b"GET " + path + b" HTTP/1.1\r\n\r\n")
            self.assertEqual(Response(transport.value()).status, 404, path)
            self.assertTrue(transport.disconnecting)
            close(protocol, transport)
        self.assertEqual(endpoint.clock.getDelayedCalls(), [])

    def test_methodNotAllowed(self) -> None:
        """
        Methods other than GET and HEAD are not allowed (405, with
        C{Allow: GET, HEAD}), whether twisted.web knows them or not.
        """
        endpoint = Endpoint()
        for method in (b"POST", b"PUT", b"DELETE", b"OPTIONS", b"BREW"):
            protocol, transport = endpoint.request(
                method + b" /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
            )
            response = Response(transport.value())
            self.assertEqual(response.status, 405, method)
            self.assertEqual(response.headers[b"allow"], b"GET, HEAD")
            self.assertTrue(transport.disconnecting)
            close(protocol, transport)
        self.assertEqual(endpoint.clock.getDelayedCalls(), [])


class LimitTests(SynchronousTestCase):
    """
    At most C{maxConnections} connections are open at once, at most
    C{maxPerAddress} from one address; over a limit, a new connection takes
    the place of the one that has waited longest without a complete request.
    """

    def test_longestWaitingMakesRoom(self) -> None:
        """
        With C{maxConnections} open and waiting for their request, a new
        connection is served, and the one that has waited longest is
        aborted (and logged); the others are left alone.
        """
        endpoint = Endpoint(maxConnections=2)
        first = endpoint.connect(host="192.0.2.1")
        second = endpoint.connect(host="192.0.2.2")
        with capturedLogs() as events:
            protocol, transport = endpoint.tryConnect(host="192.0.2.3")
        self.assertIsNotNone(protocol)
        self.assertTrue(first[1].aborted)
        self.assertFalse(second[1].disconnecting)
        self.assertEqual(events[0]["peer"], "192.0.2.1:40001")
        self.assertEqual(
            events[0]["reason"],
            "aborted to make room, the longest without a complete metrics request",
        )
        assert protocol is not None
        protocol.dataReceived(SCRAPE)
        self.assertEqual(Response(transport.value()).status, 200)

    def test_slowBytesDoNotProtect(self) -> None:
        """
        Bytes that are not yet a whole request do not keep a connection from
        being the one aborted: waiting is counted from accept.
        """
        endpoint = Endpoint(maxConnections=2)
        first = endpoint.request(b"GET /metrics HTTP/1.1\r\nX-Slow: a")
        second = endpoint.connect()
        first[0].dataReceived(b"b")
        with capturedLogs():
            endpoint.connect()
        self.assertTrue(first[1].aborted)
        self.assertFalse(second[1].disconnecting)

    def test_overLimitRefusedWhenAllRequested(self) -> None:
        """
        With C{maxConnections} open that have all sent their request (their
        answers not yet read), the next connection gets no protocol (the
        listening port closes it at once) and is logged; when one of those
        open closes, a new one is served.
        """
        endpoint = Endpoint(maxConnections=2)
        first = endpoint.request(SCRAPE)
        second = endpoint.request(SCRAPE)
        with capturedLogs() as events:
            refused, _ = endpoint.tryConnect(host="192.0.2.9")
        self.assertIsNone(refused)
        self.assertFalse(first[1].aborted or second[1].aborted)
        self.assertEqual(events[0]["reason"], "2 metrics connections already open")
        self.assertEqual(events[0]["peer"], "192.0.2.9:40003")
        close(*first)
        _, transport = endpoint.request(SCRAPE)
        self.assertEqual(Response(transport.value()).status, 200)

    def test_perAddress(self) -> None:
        """
        A client at one address holds at most C{maxPerAddress} connections:
        its next one takes the place of its own longest waiting connection,
        not another address's; with all of its own requested, it is refused.
        """
        endpoint = Endpoint(maxConnections=8, maxPerAddress=2)
        other = endpoint.connect(host="192.0.2.1")
        mine = [endpoint.connect(host="192.0.2.7") for _ in range(2)]
        with capturedLogs():
            endpoint.connect(host="192.0.2.7")
        self.assertTrue(mine[0][1].aborted)
        self.assertFalse(mine[1][1].disconnecting)
        self.assertFalse(other[1].disconnecting)
        endpoint = Endpoint(maxConnections=8, maxPerAddress=2)
        endpoint.request(SCRAPE)
        endpoint.request(SCRAPE)
        with capturedLogs() as events:
            self.assertIsNone(endpoint.tryConnect()[0])
        self.assertEqual(events[0]["reason"], "2 metrics connections from 192.0.2.7 already open")
        self.assertIsNotNone(endpoint.tryConnect(host="192.0.2.1")[0])

    def test_abortedCountUntilClosed(self) -> None:
        """
        Connections aborted to make room hold their descriptors until they
        are closed: with as many of them as C{maxConnections}, a new
        connection is refused, and served again once they are closed.
        """
        endpoint = Endpoint(maxConnections=2, maxPerAddress=2)
        aborted = [endpoint.connect(), endpoint.connect()]
        with capturedLogs() as events:
            endpoint.connect()
            endpoint.connect()
            self.assertTrue(all(transport.aborted for _, transport in aborted))
            self.assertIsNone(endpoint.tryConnect()[0])
            endpoint.clock.advance(WINDOW)
        self.assertEqual(events[-1]["reason"], "2 metrics connections still closing")
        for connection in aborted:
            close(*connection)
        with capturedLogs():
            self.assertIsNotNone(endpoint.tryConnect()[0])

    def test_scrapesGetThroughSlowClients(self) -> None:
        """
        However many slow clients keep reconnecting as they are aborted (50
        a second here, each sending a header byte a second, on
        connections aborted ones close on the reactor's next turn), a
        scrape from the same address is answered every time, even when
        all the connections that could take its place arrive between its
        accept and its request.
        """
        endpoint = Endpoint()
        slow: list[tuple[IProtocol, AbortableTransport]] = []

        def arrive() -> None:
            slow.append(endpoint.request(b"GET /metrics HTTP/1.1\r\nX-Slow: "))

        def nextTurn() -> None:
            for connection in [c for c in slow if c[1].disconnecting]:
                close(*connection)
                slow.remove(connection)

        with capturedLogs():
            for second in range(20):
                for arrival in range(50):
                    arrive()
                    nextTurn()
                    if arrival == 25:
                        protocol, transport = endpoint.connect()
                        for _ in range(METRICS_MAX_PER_ADDRESS - 1):
                            arrive()
                        protocol.dataReceived(SCRAPE)
                        self.assertEqual(Response(transport.value()).status, 200, f"{second}s")
                        close(protocol, transport)
                        nextTurn()
                endpoint.clock.advance(1)
                nextTurn()
                for slowProtocol, _ in slow:
                    slowProtocol.dataReceived(b"a")
        self.assertLessEqual(len(slow), METRICS_MAX_CONNECTIONS)

    def test_refusalsLoggedOncePerBurst(self) -> None:
        """
        A burst of refused connections logs the first at once and the rest
        as one summary a window later; nothing stays scheduled after.
        """
        endpoint = Endpoint(maxConnections=1)
        protocol, transport = endpoint.request(SCRAPE)
        with capturedLogs() as events:
            for _ in range(100):
                self.assertIsNone(endpoint.tryConnect()[0])
            self.assertEqual(len(events), 1)
            endpoint.clock.advance(WINDOW)
            self.assertEqual(len(events), 2)
            self.assertEqual(events[1]["count"], 99)
        close(protocol, transport)
        endpoint.clock.advance(WINDOW)
        self.assertEqual(endpoint.clock.getDelayedCalls(), [])

    def test_accessLogBounded(self) -> None:
        """
        However fast a client scrapes, at most L{REQUESTS_PER_SECOND}
        access-log lines are logged a second; the rest of the second's
        requests are counted in one line when it ends, and the next second
        logs one by one again.
        """
        endpoint = Endpoint()
        endpoint.factory.doStart()

        def scrapes(count: int) -> None:
            for _ in range(count):
                close(*endpoint.request(SCRAPE))

        def accessLines(events: Sequence[dict[str, Any]]) -> int:
            return sum('"GET /metrics HTTP/1.1" 200' in formatEvent(e) for e in events)

        with capturedLogs() as events:
            scrapes(REQUESTS_PER_SECOND + 15)
            self.assertEqual((accessLines(events), len(events)), (REQUESTS_PER_SECOND,) * 2)
            endpoint.clock.advance(WINDOW)
            self.assertEqual(
                formatEvent(events[-1]),
                "Folded 15 metrics requests in the last second (past 10 requests a second,"
                " their access-log lines are summed here)",
            )
            scrapes(3)
            self.assertEqual(accessLines(events), REQUESTS_PER_SECOND + 3)
        endpoint.factory.doStop()
        self.assertEqual(endpoint.clock.getDelayedCalls(), [])

    def test_accessLineBounded(self) -> None:
        """
        An access-log line is at most L{ACCESS_LINE} characters, however long
        the path and user agent the client sends; a short one is whole.
        """
        endpoint = Endpoint()
        endpoint.factory.doStart()
        long = (
            b"GET /"
            + b"A" * 8000
            + b" HTTP/1.1\r\nHost: x\r\nUser-Agent: "
            + b"B" * 4000
            + b"\r\n\r\n"
        )
        with capturedLogs() as events:
            close(*endpoint.request(long, size=4096))
            close(*endpoint.request(SCRAPE))
        endpoint.factory.doStop()
        [cut] = [formatEvent(e) for e in events if '"GET /AAAA' in formatEvent(e)]
        [whole] = [formatEvent(e) for e in events if '"GET /metrics' in formatEvent(e)]
        self.assertEqual([len(cut), cut[-1]], [ACCESS_LINE, "\N{HORIZONTAL ELLIPSIS}"])
        self.assertTrue(cut.startswith('"192.0.2.7" - - ['), cut)
        self.assertRegex(whole, r'"GET /metrics HTTP/1.1" 200 \d+ "-" "-"$')

    def test_default(self) -> None:
        """
        By default, L{METRICS_MAX_CONNECTIONS} connections are served at
        once, L{METRICS_MAX_PER_ADDRESS} from one address.
        """
        endpoint = Endpoint()
        first = [endpoint.request(SCRAPE, 100)[1] for _ in range(METRICS_MAX_PER_ADDRESS)]
        with capturedLogs():
            self.assertIsNone(endpoint.tryConnect()[0])
        hosts = [f"192.0.2.{n}" for n in range(METRICS_MAX_CONNECTIONS - len(first))]
        for host in hosts:
            endpoint.connect(host=host)
        with capturedLogs():
            self.assertIsNotNone(endpoint.tryConnect(host="192.0.2.200")[0])
        self.assertFalse(any(transport.aborted for transport in first))


class DeadlineTests(SynchronousTestCase):
    """
    A connection is aborted C{requestTimeout} seconds after it was accepted,
    whatever it sent meanwhile.
    """

    def test_slowloris(self) -> None:
        """
        A client that sends a header byte a second is aborted at the
        deadline: the bytes do not extend it.
        """
        endpoint = Endpoint(requestTimeout=10)
        protocol, transport = endpoint.request(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
        with capturedLogs() as events:
            for _ in range(9):
                endpoint.clock.advance(1)
                protocol.dataReceived(b"a")
            self.assertFalse(transport.disconnecting)
            endpoint.clock.advance(1)
        self.assertTrue(transport.aborted)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(events[0]["peer"], "192.0.2.7:40001")
        self.assertEqual(events[0]["timeout"], 10)
        close(protocol, transport)
        self.assertEqual(endpoint.clock.getDelayedCalls(), [])

    def test_idle(self) -> None:
        """
        A connection that sends nothing is aborted at the default deadline,
        L{METRICS_REQUEST_TIMEOUT}, and not before.
        """
        endpoint = Endpoint()
        protocol, transport = endpoint.connect()
        endpoint.clock.advance(METRICS_REQUEST_TIMEOUT - 0.001)
        self.assertFalse(transport.disconnecting)
        with capturedLogs():
            endpoint.clock.advance(0.001)
        self.assertTrue(transport.aborted)
        close(protocol, transport)
        self.assertEqual(endpoint.clock.getDelayedCalls(), [])

    def test_answeredButUnclosed(self) -> None:
        """
        A connection answered but still open at the deadline (a client that
        does not read) is aborted too: the deadline bounds the whole
        connection.
        """
        endpoint = Endpoint(requestTimeout=5)
        protocol, transport = endpoint.request(SCRAPE)
        self.assertTrue(transport.disconnecting)
        with capturedLogs():
            endpoint.clock.advance(5)
        self.assertTrue(transport.aborted)
        close(protocol, transport)
        self.assertEqual(endpoint.clock.getDelayedCalls(), [])


class BodyTests(SynchronousTestCase):
    """
    A request with a body is answered 413 and closed before any of the body
    is read; nothing of it is stored.
    """

    def setUp(self) -> None:
        def noTemporaryFiles(*args: object, **kwargs: object) -> None:
            self.fail("a temporary file was created")

        self.patch(tempfile, "TemporaryFile", noTemporaryFiles)
        self.patch(tempfile, "NamedTemporaryFile", noTemporaryFiles)

    def assertRefused(self, head: bytes, body: bytes) -> None:
        """
        Send C{head}, then C{body} in 64 KiB fragments (what one read from a
        socket gives): the answer is a 413 alone, the connection is closing,
        and the memory held afterwards has not grown by the body's size.
        """
        endpoint = Endpoint()
        with capturedLogs() as events, memoryGrowth() as growth:
            protocol, transport = endpoint.request(head, size=len(head))
            for fragment in fragments(body, 65536):
                protocol.dataReceived(fragment)
        self.assertEqual(
            transport.value(),
            b"HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        )
        self.assertTrue(transport.disconnecting)
        # One fragment may be held by the parser until the close; the rest
        # is dropped unread.
        self.assertLess(growth.held, 256 * 1024)
        self.assertEqual(events[0]["reason"], "metrics request with a body")
        close(protocol, transport)
        endpoint.clock.advance(WINDOW)
        self.assertEqual(endpoint.clock.getDelayedCalls(), [])

    def test_chunked(self) -> None:
        """
        A chunked body (of unknown length, which twisted.web would spool
        to a temporary file) is refused.
        """
        chunk = b"x" * 4096
        body = (b"1000\r\n" + chunk + b"\r\n") * 256 + b"0\r\n\r\n"
        self.assertRefused(
            b"POST /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + body[:100],
            body[100:],
        )

    def test_contentLength(self) -> None:
        """
        A body of 1 MB announced by C{Content-Length} is refused, even with
        C{GET}.
        """
        body = b"x" * 1_000_000
        self.assertRefused(b"GET /metrics HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body), body)

    def test_smallBody(self) -> None:
        """
        A body of a few bytes, in the same fragment as the headers, is
        refused too.
        """
        self.assertRefused(b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", b"")

    def test_expectContinue(self) -> None:
        """
        A client that asks whether to send its body (C{Expect:
        100-continue}) gets the 413 and no invitation to send it.
        """
        self.assertRefused(
            b"POST /metrics HTTP/1.1\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n",
            b"",
        )


class HeaderLimitTests(SynchronousTestCase):
    """
    twisted.web bounds the request line and headers: 16 KiB per line
    (C{LineReceiver.MAX_LENGTH}), 16 KiB in all (C{totalHeadersSize}), and
    500 headers (C{maxHeaders}).
    """

    def test_longLine(self) -> None:
        """
        A header line longer than 16 KiB, never ended, closes the
        connection.
        """
        endpoint = Endpoint()
        _, transport = endpoint.request(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20000, size=4096)
        self.assertTrue(transport.disconnecting)
        self.assertNotIn(b"200 OK", transport.value())

    def test_manyHeaders(self) -> None:
        """
        Headers over 16 KiB in all, in short lines, are answered 400.
        """
        endpoint = Endpoint()
        headers = b"".join(b"X-%d: %s\r\n" % (i, b"a" * 90) for i in range(200))
        _, transport = endpoint.request(b"GET /metrics HTTP/1.1\r\n" + headers, size=4096)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(Response(transport.value()).status, 400)


class CompatibilityTests(SynchronousTestCase):
    """
    L{metricsSite}, for callers that do not pass a clock yet.
    """

    def test_metricsSite(self) -> None:
        """
        L{metricsSite} gives a protocol factory with the default limits.
        """
        factory = metricsSite(StubServer())
        self.assertTrue(IProtocolFactory.providedBy(factory))
        self.assertEqual(factory.maxConnections, METRICS_MAX_CONNECTIONS)  # type: ignore[attr-defined]
        self.assertEqual(factory.requestTimeout, METRICS_REQUEST_TIMEOUT)  # type: ignore[attr-defined]
