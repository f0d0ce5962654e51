"""
Process tests: C{--fault} on every kind of listener of the real
C{twistd uppercase} (TCP, UNIX, TLS, PROXY behind a real HAProxy), seen by
the real C{uppercase-client --json}, and C{on=PORT-or-PATH} applying to one
listener of two.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
from typing import Any

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from ._process import DEADLINE, Twistd, closedPort, requireTLS, run, script
from .test_endpoints import makeCertificate
from .test_haproxy import HAPROXY, HAProxy


def summary(connect: str, *args: str) -> tuple[int, dict[str, Any]]:
    """
    C{uppercase-client -c CONNECT --json ARGS}: its exit status and summary.
    """
    result = run(script("uppercase-client") + ["-c", connect, "--json", *args])
    lines = result.stdout.splitlines()
    if not lines:
        raise AssertionError(f"{connect}: no output; stderr: {result.stderr}")
    return result.returncode, json.loads(lines[-1])


def echo(family: int, address: tuple[str, int] | str) -> bytes:
    """
    Send C{ab} and half-close: what came back before the server's end.
    """
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(DEADLINE)
        s.connect(address)
        s.sendall(b"ab")
        s.shutdown(socket.SHUT_WR)
        received = b""
        while True:
            chunk = s.recv(16)
            if not chunk:
                return received
            received += chunk


class EveryListenerTests(SynchronousTestCase):
    """
    One server with C{latency,delay=20ms} and C{close,after=10KB} listening
    on TCP, UNIX, TLS and PROXY-protocol endpoints at once.
    """

    def setUp(self) -> None:
        self.folder = tempfile.mkdtemp()
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", self.folder]))

    def test_everyListener(self) -> None:
        """
        On each listener (and through HAProxy, v2), the client's 1,000-byte
        messages at 100 a second come back 20 to 25 ms late (p50), and the
        connection is reported closed early after exactly 10,000 bytes,
        exit status 1; the server counts four connections with each fault.
        """
        requireTLS()
        if not HAPROXY:
            if os.environ.get("CI"):
                raise AssertionError("haproxy is not installed (.ci/run installs it)")
            raise SkipTest("haproxy is not installed (apt-get install haproxy)")
        key, cert, roots = makeCertificate(self.folder)
        path = os.path.join(self.folder, "faulty.sock")
        tcp, tls, proxied, metrics = closedPort(), closedPort(), closedPort(), closedPort()
        server = Twistd(
            "uppercase",
            "--fault",
            "latency,delay=20ms",
            "--fault",
            "close,after=10KB",
            "--metrics",
            f"tcp:{metrics}:interface=127.0.0.1",
            "--listen",
            f"tcp:{tcp}:interface=127.0.0.1",
            "--listen",
            f"unix:{path}",
            "--listen",
            f"ssl:{tls}:interface=127.0.0.1:privateKey={key}:certKey={cert}",
            "--listen",
            f"haproxy:tcp:{proxied}:interface=127.0.0.1",
        )
        self.addCleanup(server.stop)
        server.waitFor(r"faults: latency,delay=20ms, close,after=10KB; seed \d+")
        server.waitFor(r"uppercase \S+ serving on ")
        proxy = HAProxy(proxied, "send-proxy-v2")
        self.addCleanup(proxy.stop)
        for connect in [
            f"tcp:127.0.0.1:{tcp}",
            f"unix:{path}",
            f"tls:localhost:{tls}:trustRoots={roots}",
            f"tcp:127.0.0.1:{proxy.port}",
        ]:
            status, result = summary(connect, "--rate", "100", "--size", "1000", "--count", "50")
            self.assertEqual(status, 1, connect)
            [ended] = result["ended_early"]
            self.assertEqual(
                (ended["kind"], ended["received_bytes"], result["verified"]),
                ("closed early", 10000, 10),
                connect,
            )
            self.assertTrue(
                20 <= result["latency_ms"]["p50"] <= 25, (connect, result["latency_ms"])
            )
        scraped = run(["curl", "-s", f"http://127.0.0.1:{metrics}/metrics"]).stdout
        self.assertIn('uppercase_faults_applied_total{kind="latency"} 4.0', scraped)
        self.assertIn('uppercase_faults_applied_total{kind="close"} 4.0', scraped)


class OnTests(SynchronousTestCase):
    """
    C{on=PORT-or-PATH}: a fault on one listener only.
    """

    def test_port(self) -> None:
        """
        C{close,after=1B,on=PORT} cuts the connections of the listener on
        that port after one byte, and leaves the other TCP listener's whole.
        """
        plain, faulty = closedPort(), closedPort()
        server = Twistd(
            "uppercase",
            "--quiet",
            "--fault",
            f"close,after=1B,on={faulty}",
            "--listen",
            f"tcp:{plain}:interface=127.0.0.1",
            "--listen",
            f"tcp:{faulty}:interface=127.0.0.1",
        )
        self.addCleanup(server.stop)
        server.waitFor(rf"starting on {faulty}")
        for _ in range(3):
            self.assertEqual(echo(socket.AF_INET, ("127.0.0.1", plain)), b"AB")
            self.assertEqual(echo(socket.AF_INET, ("127.0.0.1", faulty)), b"A")

    def test_path(self) -> None:
        """
        C{close,after=1B,on=PATH} cuts the connections of the UNIX listener
        at that path after one byte, and leaves the TCP listener's whole.
        """
        folder = tempfile.mkdtemp()
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", folder]))
        path = os.path.join(folder, "faulty.sock")
        plain = closedPort()
        server = Twistd(
            "uppercase",
            "--quiet",
            "--fault",
            f"close,after=1B,on={path}",
            "--listen",
            f"tcp:{plain}:interface=127.0.0.1",
            "--listen",
            f"unix:{path}",
        )
        self.addCleanup(server.stop)
        server.waitFor(r"starting on '.*faulty\.sock'")
        for _ in range(3):
            self.assertEqual(echo(socket.AF_INET, ("127.0.0.1", plain)), b"AB")
            self.assertEqual(echo(socket.AF_UNIX, path), b"A")
