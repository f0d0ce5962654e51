"""The metrics endpoint of a real server: scraped over HTTP, and held by hostile clients."""

from __future__ import annotations

import os
import resource
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from typing import Callable

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from uppercase.server._metrics import (
    METRICS_MAX_CONNECTIONS,
    METRICS_MAX_DESCRIPTORS,
    METRICS_MAX_PER_ADDRESS,
    METRICS_REQUEST_TIMEOUT,
)

from ..unit.server.test_metrics import sample
from ._process import DEADLINE, Server, Twistd, listenBacklog, receiveAll, requireTLS
from .test_endpoints import makeCertificate
from .test_robustness import poll

METRICS_PORT = r"MetricsSite (?:\(TLS\) )?starting on (\d+)"
"""The log line that gives the metrics endpoint's port (Twisted's "PREFIX
starting on PORT", with the prefix our metrics factory names itself by)."""


def metricsServer(
    metrics: str = "tcp:0:interface=127.0.0.1", preexec: Callable[[], None] | None = None
) -> tuple[Server, int]:
    """
    A server with C{--metrics} on a free loopback port, and that port.
    """
    server = Server("--quiet", "--metrics", metrics, preexec=preexec)
    return server, int(server.waitFor(METRICS_PORT).group(1))


def scrape(port: int) -> bytes:
    """
    C{GET /metrics} on a fresh connection; the whole answer, read until the
    server closes.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        return receiveAll(s)


def scrapes(port: int) -> bool:
    """
    Whether a scrape is answered 200 now (not refused).
    """
    try:
        return scrape(port).startswith(b"HTTP/1.1 200 ")
    except OSError:
        return False


def closedByPeer(s: socket.socket) -> bool:
    """
    Read what is readable on C{s}: whether that is the end of the stream.
    """
    try:
        return s.recv(4096) == b""
    except ConnectionResetError:
        return True


def waitForCloses(sockets: list[socket.socket], count: int) -> list[socket.socket]:
    """
    Wait until the peer has closed C{count} of C{sockets}, or L{DEADLINE}
    passes; the sockets it closed.
    """
    deadline = time.monotonic() + DEADLINE
    closed: list[socket.socket] = []
    while len(closed) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        waiting = [s for s in sockets if s not in closed]
        readable, _, _ = select.select(waiting, [], [], left)
        closed.extend(s for s in readable if closedByPeer(s))
    return closed


class MetricsEndpointTests(SynchronousTestCase):
    """
    C{--metrics ENDPOINT} serves the metrics over HTTP from the server.
    """

    def test_scrape(self) -> None:
        """
        After one exchange, /metrics shows it, and the connection is closed
        after the answer.
        """
        server, metricsPort = metricsServer()
        self.addCleanup(server.stop)
        with server.connect() as s:
            s.sendall(b"hello\n")
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(receiveAll(s), b"HELLO\n")
        server.waitFor("closed")
        url = f"http://127.0.0.1:{metricsPort}/metrics"
        with urllib.request.urlopen(url, timeout=DEADLINE) as response:
            self.assertEqual(response.status, 200)
            self.assertIn("text/plain", response.headers["Content-Type"])
            self.assertEqual(response.headers["Connection"], "close")
            text = response.read()
        self.assertEqual(sample(text, "uppercase_connections_total"), 1)
        self.assertEqual(sample(text, "uppercase_bytes_received_total"), 6)
        self.assertEqual(sample(text, "uppercase_connections_active"), 0)
        self.assertGreater(sample(text, "process_open_fds"), 0)


class MetricsBacklogTests(SynchronousTestCase):
    """
    The metrics listener gets the backlog every other listener gets (511,
    not Twisted's 50), so that a burst of connections to it waits in the
    kernel's queue instead of having its SYNs dropped and retried.
    """

    def test_singleProcess(self) -> None:
        """
        C{--metrics tcp:PORT} listens with a backlog of 511.
        """
        server, metricsPort = metricsServer()
        self.addCleanup(server.stop)
        self.assertEqual(listenBacklog(metricsPort), 511)

    def test_workers(self) -> None:
        """
        Under C{--workers}, the supervisor's metrics listener does too, and
        C{backlog=N} in the string is kept.
        """
        for metrics, backlog in [
            ("tcp:0:interface=127.0.0.1:backlog=9", 9),
            ("tcp:0:interface=127.0.0.1", 511),
        ]:
            server = Twistd(
                "uppercase",
                "--quiet",
                "--workers",
                "2",
                "--listen",
                "tcp:0:interface=127.0.0.1",
                "--metrics",
                metrics,
            )
            self.addCleanup(server.stop)
            port = int(server.waitFor(METRICS_PORT).group(1))
            self.assertEqual(listenBacklog(port), backlog, metrics)
            server.stop()


class MetricsLimitTests(SynchronousTestCase):
    """
    Clients of the metrics endpoint cannot take the server's descriptors or
    hold a connection past the deadline.
    """

    def test_idleConnectionsDoNotStarveTheServer(self) -> None:
        """
        Under a descriptor limit the idle connections would exceed, the
        metrics endpoint keeps L{METRICS_MAX_PER_ADDRESS} of them from their
        one address, the newest, and closes the others; the echo listener
        still serves; and a scrape is answered while they are open, taking
        the place of the one that has waited longest.
        """
        count = METRICS_MAX_CONNECTIONS + 20
        extra = count - METRICS_MAX_PER_ADDRESS
        # At rest the server holds 11 descriptors: 11 + 16 for the metrics
        # endpoint + an echo client + a scrape fit under 32, 11 + 28 idle
        # connections do not.
        limit = METRICS_MAX_DESCRIPTORS + 16
        server, metricsPort = metricsServer(
            preexec=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
        )
        self.addCleanup(server.stop)
        idle = []
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", metricsPort), timeout=DEADLINE)
            self.addCleanup(s.close)
            idle.append(s)
        closed = waitForCloses(idle, extra)
        self.assertEqual(len(closed), extra)
        kept = [s for s in idle if s not in closed]
        self.assertEqual(select.select(kept, [], [], 0)[0], [], "more were closed")
        with server.connect() as s:
            s.sendall(b"still here\n")
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(receiveAll(s), b"STILL HERE\n")
        self.assertTrue(scrapes(metricsPort), "no scrape answered")
        self.assertEqual(len(waitForCloses(kept, 1)), 1)
        server.waitFor(
            "Refused connection from 127.0.0.1:\\d+: aborted to make room, the longest without a complete metrics request"
        )
        self.assertNotIn("EMFILE", server.output)
        self.assertNotIn("Traceback", server.output)

    def test_slowloris(self) -> None:
        """
        A client that sends one header byte every 0.2 seconds is cut at
        L{METRICS_REQUEST_TIMEOUT} seconds after it connected, however long
        it keeps sending.
        """
        server, metricsPort = metricsServer()
        self.addCleanup(server.stop)
        header = b"GET /metrics HTTP/1.1\r\nX-Slow: "
        giveUp = METRICS_REQUEST_TIMEOUT + 3
        with socket.create_connection(("127.0.0.1", metricsPort), timeout=DEADLINE) as s:
            start = time.monotonic()
            s.sendall(header)
            cut = False
            while not cut and time.monotonic() - start < giveUp:
                # Pace the bytes by waiting for the server to close.
                if select.select([s], [], [], 0.2)[0]:
                    cut = closedByPeer(s)
                    continue
                try:
                    s.sendall(b"a")
                except OSError:
                    cut = True
            lasted = time.monotonic() - start
        self.assertTrue(cut, f"still open after {lasted:.1f} seconds")
        self.assertGreaterEqual(lasted, METRICS_REQUEST_TIMEOUT - 0.5)
        server.waitFor(
            "Aborting metrics connection from 127.0.0.1:\\d+: "
            f"still open after {METRICS_REQUEST_TIMEOUT:g} seconds"
        )

    def test_limitBehindTLS(self) -> None:
        """
        On an C{ssl:} endpoint too, connections over the limit (here, over
        one address's share) are closed, without an error in the log, and a
        scrape over TLS is answered.
        """
        try:
            import OpenSSL  # noqa: F401
        except ImportError:
            if os.environ.get("UPPERCASE_TLS_OPTIONAL"):
                raise SkipTest("pyOpenSSL is not installed") from None
            raise
        folder = tempfile.TemporaryDirectory()
        self.addCleanup(folder.cleanup)
        key, cert, roots = makeCertificate(folder.name)
        server, metricsPort = metricsServer(
            f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
        )
        self.addCleanup(server.stop)
        count = METRICS_MAX_CONNECTIONS + 5
        idle = []
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", metricsPort), timeout=DEADLINE)
            self.addCleanup(s.close)
            idle.append(s)
        # All from one address: it keeps its newest METRICS_MAX_PER_ADDRESS.
        closes = count - METRICS_MAX_PER_ADDRESS
        self.assertEqual(len(waitForCloses(idle, closes)), closes)
        for s in idle:
            s.close()
        context = ssl.create_default_context(cafile=os.path.join(roots, "ca.pem"))

        def scrapesOverTLS() -> bool:
            try:
                raw = socket.create_connection(("127.0.0.1", metricsPort), timeout=DEADLINE)
                with context.wrap_socket(raw, server_hostname="localhost") as s:
                    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    return receiveAll(s).startswith(b"HTTP/1.1 200 ")
            except OSError:
                return False

        self.assertTrue(poll(scrapesOverTLS), "no scrape answered")
        self.assertNotIn("Traceback", server.output)
        self.assertNotIn("Unhandled Error", server.output)


class MetricsALPNTests(SynchronousTestCase):
    """
    Over TLS, the metrics endpoint answers ALPN (RFC 7301) with
    C{http/1.1}, so that clients which offer protocols, curl among them,
    can scrape it.
    """

    def setUp(self) -> None:
        requireTLS()
        folder = tempfile.TemporaryDirectory()
        self.addCleanup(folder.cleanup)
        key, cert, roots = makeCertificate(folder.name)
        self.cafile = os.path.join(roots, "ca.pem")
        self.server, self.port = self.start(
            f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
        )
        self.addCleanup(self.server.stop)

    def start(self, metrics: str) -> tuple[Twistd, int]:
        """
        A server with C{--metrics} on C{metrics}, and the metrics port.
        """
        return metricsServer(metrics)

    def handshake(self, protocols: list[str]) -> ssl.SSLSocket:
        """
        A TLS connection to the metrics endpoint that offered C{protocols}.
        """
        context = ssl.create_default_context(cafile=self.cafile)
        context.set_alpn_protocols(protocols)
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE)
        self.addCleanup(raw.close)
        s = context.wrap_socket(raw, server_hostname="localhost")
        self.addCleanup(s.close)
        return s

    def test_http11Selected(self) -> None:
        """
        A client offering C{h2} and C{http/1.1}, in that order, gets
        C{http/1.1}, and its scrape is answered.
        """
        s = self.handshake(["h2", "http/1.1"])
        self.assertEqual(s.selected_alpn_protocol(), "http/1.1")
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        self.assertTrue(receiveAll(s).startswith(b"HTTP/1.1 200 "))

    def test_noProtocolInCommon(self) -> None:
        """
        A client offering only protocols the endpoint does not speak gets
        the C{no_application_protocol} alert RFC 7301 asks for, and the
        server logs no error (checked once a later scrape is logged).
        """
        with self.assertRaises(ssl.SSLError) as caught:
            self.handshake(["h2"])
        self.assertIn("no application protocol", str(caught.exception))
        s = self.handshake(["http/1.1"])
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        self.assertTrue(receiveAll(s).startswith(b"HTTP/1.1 200 "))
        self.server.waitFor('"GET /metrics HTTP/1.1" 200')
        self.assertNotIn("Traceback", self.server.output)
        self.assertNotIn("Unhandled Error", self.server.output)

    def test_curl(self) -> None:
        """
        C{curl https://.../metrics}, which offers C{h2} and C{http/1.1},
        verifies the certificate and gets the metrics.
        """
        curl = shutil.which("curl")
        if curl is None:
            raise SkipTest("curl is not installed")
        result = subprocess.run(
            [curl, "-sS", "--cacert", self.cafile, f"https://localhost:{self.port}/metrics"],
            capture_output=True,
            text=True,
            timeout=DEADLINE,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("uppercase_connections_total", result.stdout)


class WorkersMetricsALPNTests(MetricsALPNTests):
    """
    With C{--workers}, the supervisor's own metrics endpoint answers ALPN
    the same way.
    """

    def start(self, metrics: str) -> tuple[Twistd, int]:
        server = Twistd(
            "uppercase",
            "--quiet",
            "--workers",
            "2",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--metrics",
            metrics,
        )
        self.addCleanup(server.stop)
        port = int(server.waitFor(METRICS_PORT).group(1))
        server.waitFor(r"Worker 2 \(pid \d+\) is serving")
        return server, port
