"""The metrics endpoint of a real server, scraped over HTTP."""

from __future__ import annotations

import socket
import urllib.request

from twisted.trial.unittest import SynchronousTestCase

from ..unit.test_metrics import sample
from ._process import DEADLINE, Server, receiveAll


class MetricsEndpointTests(SynchronousTestCase):
    """
    C{--metrics ENDPOINT} serves the metrics over HTTP from the server.
    """

    def test_scrape(self) -> None:
        """
        After one exchange, /metrics shows it.
        """
        server = Server("--quiet", "--metrics", "tcp:0:interface=127.0.0.1")
        self.addCleanup(server.stop)
        metricsPort = int(server.waitFor(r"Site starting on (\d+)").group(1))
        with server.connect() as s:
            s.sendall(b"hello\n")
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(receiveAll(s), b"HELLO\n")
        server.waitFor("closed")
        url = f"http://127.0.0.1:{metricsPort}/metrics"
        with urllib.request.urlopen(url, timeout=DEADLINE) as response:
            self.assertEqual(response.status, 200)
            self.assertIn("text/plain", response.headers["Content-Type"])
            text = response.read()
        self.assertEqual(sample(text, "uppercase_connections_total"), 1)
        self.assertEqual(sample(text, "uppercase_bytes_received_total"), 6)
        self.assertEqual(sample(text, "uppercase_connections_active"), 0)
        self.assertGreater(sample(text, "process_open_fds"), 0)
