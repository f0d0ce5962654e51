"""
The UDP echo of a real C{twistd uppercase --listen udp:...}: datagrams of
every size echoed, a flood limited and counted while others are served,
log lines and metrics that agree, C{--workers}, systemd's datagram sockets,
and a prompt stop.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import time
import urllib.request

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from ..unit.server.test_metrics import sample
from ._process import DEADLINE, Twistd, run, script
from .test_robustness import poll


def freeUDPPort(host: str = "127.0.0.1") -> int:
    """
    A UDP port nothing is bound to on C{host} (bound, then released).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class UDPServer(Twistd):
    """
    C{twistd -n uppercase --listen udp:PORT:interface=HOST} with metrics on
    a free loopback port.
    """

    def __init__(self, *args: str, host: str = "127.0.0.1", port: int = 0) -> None:
        escaped = host.replace(":", "\\:")
        super().__init__(
            "uppercase",
            "--listen",
            f"udp:{port}:interface={escaped}",
            "--metrics",
            "tcp:0:interface=127.0.0.1",
            *args,
        )
        self.host = host
        self.port = int(self.waitFor(r"DatagramEcho starting on (\d+)").group(1))
        self.metricsPort = int(self.waitFor(r"MetricsSite starting on (\d+)").group(1))

    def metrics(self) -> bytes:
        url = f"http://127.0.0.1:{self.metricsPort}/metrics"
        with urllib.request.urlopen(url, timeout=DEADLINE) as response:
            return response.read()


def exchange(
    host: str, port: int, datagram: bytes, source: str | None = None, timeout: float = DEADLINE
) -> bytes:
    """
    Send C{datagram} to C{(host, port)} (from C{source}, if given) and
    return the reply.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        if source is not None:
            s.bind((source, 0))
        s.sendto(datagram, (host, port))
        return s.recvfrom(70000)[0]


def still(port: int, attempts: int = 5) -> bytes:
    """
    Send C{still} from 127.0.0.1 until it is answered, up to C{attempts}
    times a second apart (the kernel may drop a datagram that finds the
    server's receive buffer full of a flood, before the server sees it).
    """
    for _ in range(attempts - 1):
        try:
            return exchange("127.0.0.1", port, b"still", timeout=1.0)
        except socket.timeout:
            pass
    return exchange("127.0.0.1", port, b"still")


def dropped(exposition: bytes, reason: str) -> float:
    line = f'uppercase_datagrams_dropped_total{{reason="{reason}"}} '.encode()
    for row in exposition.splitlines():
        if row.startswith(line):
            return float(row.split()[1])
    raise AssertionError(f"no {reason} drops in:\n{exposition.decode()}")


class EchoTests(SynchronousTestCase):
    """
    Every size of datagram, over IPv4 and IPv6.
    """

    def test_sizes(self) -> None:
        """
        A datagram comes back uppercased; a 0-byte one as a 0-byte one; a
        65,507-byte one whole; the per-source log line and the metrics say
        the same counts.
        """
        server = UDPServer()
        self.addCleanup(server.stop)
        self.assertEqual(exchange("127.0.0.1", server.port, b"hello udp"), b"HELLO UDP")
        self.assertEqual(exchange("127.0.0.1", server.port, b""), b"")
        big = bytes(range(256)) * 255 + b"x" * 227
        self.assertEqual(len(big), 65507)
        self.assertEqual(exchange("127.0.0.1", server.port, big), big.upper())
        text = server.metrics()
        self.assertEqual(sample(text, "uppercase_datagrams_received_total"), 3)
        self.assertEqual(sample(text, "uppercase_datagrams_sent_total"), 3)
        self.assertEqual(sample(text, "uppercase_datagram_bytes_sent_total"), 9 + 65507)
        server.waitFor(r"UDP 127\.0\.0\.1:\d+: 1 datagram \(65,507 bytes\) in the last second")
        self.assertEqual(server.stop(), -signal.SIGTERM)
        self.assertNotIn("Traceback", server.output)

    def test_ipv6TooLarge(self) -> None:
        """
        Over IPv6, which carries datagrams up to 65,527 bytes, one over
        65,507 bytes is dropped and counted as too large, never echoed
        truncated; the next is echoed.
        """
        if not socket.has_ipv6:
            raise SkipTest("no IPv6")
        server = UDPServer("--plain", host="::1")
        self.addCleanup(server.stop)
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.settimeout(1.0)
            s.sendto(b"x" * 65527, ("::1", server.port))
            self.assertRaises(socket.timeout, s.recvfrom, 70000)
        self.assertEqual(exchange("::1", server.port, b"plain"), b"plain")
        self.assertEqual(dropped(server.metrics(), "too-large"), 1)
        server.waitFor(r"UDP \[::1\]:\d+: 1 datagram \(65,527 bytes\).*1 dropped \(1 too large\)")


class FloodTests(SynchronousTestCase):
    """
    A flood from one source is limited and counted; others are served.
    """

    def test_floodLimitedOthersServed(self) -> None:
        """
        With C{--udp-rate-per-source 50}, 2,000 datagrams sent within a
        fraction of a second from 127.0.0.2 get at most about 50 replies, the rest counted as dropped
        over the per-source rate (in the log line and the metrics alike),
        while 127.0.0.1 is still served; the counts add up.
        """
        server = UDPServer("--udp-rate-per-source", "50")
        self.addCleanup(server.stop)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as flood:
            flood.bind(("127.0.0.2", 0))
            flood.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            for i in range(2000):
                flood.sendto(b"flood", ("127.0.0.1", server.port))
                if i % 100 == 99:
                    time.sleep(0.005)  # not so fast that the kernel drops them
            self.assertEqual(still(server.port), b"STILL")
            flood.settimeout(0.5)
            replies = 0
            try:
                while True:
                    flood.recvfrom(100)
                    replies += 1
            except socket.timeout:
                pass
        self.assertGreater(replies, 0)
        self.assertLessEqual(replies, 60)

        def settled() -> bool:
            text = server.metrics()
            return sample(text, "uppercase_datagrams_received_total") >= 2001

        # The kernel may drop some of the flood before the server reads it.
        poll(lambda: server.process.poll() is not None or settled(), 2.0)
        text = server.metrics()
        received = sample(text, "uppercase_datagrams_received_total")
        sent = sample(text, "uppercase_datagrams_sent_total")
        limited = dropped(text, "source-rate")
        self.assertGreaterEqual(sent, replies + 1)
        self.assertEqual(received, sent + limited)
        self.assertEqual(server.stop(), -signal.SIGTERM)
        self.assertNotIn("Traceback", server.output)
        lines = re.findall(
            r"UDP 127\.0\.0\.2:\d+: ([\d,]+) datagrams? .* ([\d,]+) echoed"
            r"(?:, ([\d,]+) dropped \(([\d,]+) over the per-source rate\))?",
            server.output,
        )
        self.assertTrue(lines, server.output)

        def total(column: int) -> int:
            return sum(int(line[column].replace(",", "") or 0) for line in lines)

        self.assertEqual(total(1), replies)
        # 127.0.0.1's datagrams (each answered: far under its rate) aside:
        self.assertEqual(total(0), received - (sent - replies))
        self.assertEqual(total(3), limited)


class StopTests(SynchronousTestCase):
    """
    Start-up errors in one line, and a prompt stop.
    """

    def test_sigtermStopsPromptly(self) -> None:
        """
        On SIGTERM the UDP port closes and the process ends by the signal within a
        few seconds.
        """
        server = UDPServer()
        self.assertEqual(exchange("127.0.0.1", server.port, b"x"), b"X")
        started = time.monotonic()
        self.assertEqual(server.stop(signal.SIGTERM), -signal.SIGTERM)
        self.assertLess(time.monotonic() - started, 5)
        self.assertIn(f"(UDP Port {server.port} Closed)", server.output)

    def test_portInUseIsOneLine(self) -> None:
        """
        A UDP port in use is one line and exit status 1.
        """
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind(("127.0.0.1", 0))
            port = taken.getsockname()[1]
            result = run(
                script("twistd")
                + ["-n", "--pidfile=", "uppercase", "--listen", f"udp:{port}:interface=127.0.0.1"]
            )
        self.assertEqual(result.returncode, 1)
        self.assertIn(
            f"twistd uppercase: cannot listen on udp:{port}:interface=127.0.0.1: "
            "Address already in use\n",
            result.stdout + result.stderr,
        )
        self.assertNotIn("Traceback", result.stdout + result.stderr)

    def test_badEndpointIsUsageError(self) -> None:
        """
        A bad C{udp:} string is one usage line and exit status 2.
        """
        result = run(script("twistd") + ["-n", "--pidfile=", "uppercase", "--listen", "udp:x"])
        self.assertEqual(result.returncode, 2)
        self.assertIn("'udp:x' is not a valid endpoint", result.stderr)
        self.assertNotIn("Traceback", result.stdout + result.stderr)


class WorkersTests(SynchronousTestCase):
    """
    C{--workers 2} over UDP: each worker its own C{SO_REUSEPORT} socket.
    """

    def test_twoWorkers(self) -> None:
        """
        Both workers serve the UDP port; datagrams from many sources are
        all echoed; the supervisor's metrics sum the workers' UDP counts.
        """
        port = freeUDPPort()
        server = Twistd(
            "uppercase",
            "--quiet",
            "--workers",
            "2",
            "--listen",
            f"udp:{port}:interface=127.0.0.1",
            "--metrics",
            "tcp:0:interface=127.0.0.1",
        )
        self.addCleanup(server.stop)
        for n in (1, 2):
            server.waitFor(rf"Worker {n} \(pid \d+\) is serving")
        metricsPort = int(server.waitFor(r"MetricsSite starting on (\d+)").group(1))
        for i in range(40):
            self.assertEqual(exchange("127.0.0.1", port, b"w%d" % i), b"W%d" % i)

        def scrape() -> bytes:
            url = f"http://127.0.0.1:{metricsPort}/metrics"
            with urllib.request.urlopen(url, timeout=DEADLINE) as response:
                return response.read()

        self.assertTrue(
            poll(lambda: sample(scrape(), "uppercase_datagrams_sent_total") == 40),
            scrape().decode(),
        )
        self.assertEqual(sample(scrape(), "uppercase_datagrams_received_total"), 40)
        self.assertEqual(server.stop(), -signal.SIGTERM)
        self.assertNotIn("Traceback", server.output)


ACTIVATE = shutil.which("systemd-socket-activate")


class SystemdTests(SynchronousTestCase):
    """
    A datagram socket from systemd (C{ListenDatagram=}), as
    C{systemd-socket-activate --datagram} passes it.
    """

    def setUp(self) -> None:
        if ACTIVATE is None:
            if os.environ.get("CI"):
                raise AssertionError("systemd-socket-activate is missing (.ci/run installs it)")
            raise SkipTest("systemd-socket-activate is not installed (apt-get install systemd)")

    def activated(self, *extra: str) -> tuple[Twistd, int]:
        port = freeUDPPort()

        class Activated(Twistd):
            def command(self, args: list[str]) -> list[str]:  # type: ignore[override]
                return [
                    str(ACTIVATE),
                    "--datagram",
                    f"--listen=127.0.0.1:{port}",
                    "--fdname=uppercase-udp",
                    *script("twistd"),
                    "-n",
                    "--pidfile=",
                    *args,
                ]

        server = Activated(
            "uppercase", "--listen", "systemd:domain=INET:name=uppercase-udp", *extra
        )
        self.addCleanup(server.stop)
        server.waitFor("Listening on")
        return server, port

    def test_datagramSocketServed(self) -> None:
        """
        The first datagram (which activates the server) and the next are
        echoed from systemd's datagram socket.
        """
        server, port = self.activated()
        self.assertEqual(exchange("127.0.0.1", port, b"activated"), b"ACTIVATED")
        self.assertEqual(exchange("127.0.0.1", port, b"again"), b"AGAIN")
        self.assertNotIn("Traceback", server.output)

    def test_datagramSocketWithWorkers(self) -> None:
        """
        With C{--workers 2}, the workers share systemd's datagram socket.
        """
        server, port = self.activated("--workers", "2")
        self.assertEqual(exchange("127.0.0.1", port, b"first"), b"FIRST")
        for n in (1, 2):
            server.waitFor(rf"Worker {n} \(pid \d+\) is serving")
        for i in range(10):
            self.assertEqual(exchange("127.0.0.1", port, b"w%d" % i), b"W%d" % i)
        self.assertNotIn("Traceback", server.output)
