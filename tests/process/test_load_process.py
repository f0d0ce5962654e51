"""
C{uppercase-client} in load mode as real processes, on loopback: against
our server (TCP, UNIX, TLS, PROXY), behind a real HAProxy, against a peer
that echoes without uppercasing, with a server stopped mid-run, interrupted,
as JSON, with thresholds, and C{twistd uppercase-client} as a prober whose
metrics are scraped.  Every wait is bounded; nothing sleeps.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from ._process import DEADLINE, Server, Twistd, requireTLS, run, script
from .test_client_process import ClientProcess, Peer, deliverSigintToChildren, echo
from .test_endpoints import makeCertificate
from .test_haproxy import HAPROXY, HAProxy
from .test_robustness import poll

PERCENTILES = re.compile(
    r"^latency ms \((?P<basis>[^)]*)\): p50 (?P<p50>[\d.]+)  p90 [\d.]+  p99 (?P<p99>[\d.]+)  "
    r"p99\.9 [\d.]+  max (?P<max>[\d.]+)$",
    re.M,
)


def load(*args: str, timeout: float = DEADLINE) -> subprocess.CompletedProcess[str]:
    """
    Run C{uppercase-client ARGS} to completion.
    """
    return run(script("uppercase-client") + list(args), timeout=timeout)


class RawEcho:
    """
    A TCP peer on loopback, in a thread, that sends back every byte as it
    came (no uppercasing), and closes when the client does.
    """

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port: int = self._listener.getsockname()[1]
        self._wake, self._waker = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        peers: list[socket.socket] = []
        try:
            while True:
                readable, _, _ = select.select([self._listener, self._wake, *peers], [], [])
                if self._wake in readable:
                    return
                for s in readable:
                    if s is self._listener:
                        peers.append(s.accept()[0])
                        continue
                    try:
                        data = s.recv(65536)
                        if data:
                            s.sendall(data)
                            continue
                    except OSError:
                        pass
                    peers.remove(s)
                    s.close()
        finally:
            for s in peers:
                s.close()

    def close(self) -> None:
        self._waker.send(b"x")
        self._thread.join(DEADLINE)
        for s in (self._listener, self._wake, self._waker):
            s.close()


class AgainstServerTests(SynchronousTestCase):
    """
    Against our own server, every message is verified and the figures are
    printed.
    """

    def setUp(self) -> None:
        self.server = Server("--quiet")
        self.addCleanup(self.server.stop)
        self.connect = f"tcp:127.0.0.1:{self.server.port}"

    def test_closedLoop(self) -> None:
        """
        20 connections, pipeline 8, 2 seconds: status 0, nothing failed,
        percentiles with units, verified throughput, what TCP saw, and a
        progress line each second on standard error.
        """
        result = load(
            "-c", self.connect, "--connections", "20", "--pipeline", "8", "--duration", "2"
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        out = result.stdout
        self.assertIn("closed loop: 20 connections, pipeline 8", out)
        self.assertRegex(out, r" verified, 0 failed, 0 lost; measured [\d,]+ in [\d.,]+ (?:s|ms): ")
        self.assertRegex(out, r"[\d,]+ messages/s, [\d.,]+ MB/s verified each way")
        self.assertIsNotNone(PERCENTILES.search(out))
        self.assertIn("errors: none", out)
        self.assertRegex(out, r"tcp \(kernel, 20 connections\): \d+ retransmitted segments; rtt ")
        progress = [line for line in result.stderr.splitlines() if line.startswith("[")]
        self.assertGreaterEqual(len(progress), 2, result.stderr)

    def test_streamHalfClose(self) -> None:
        """
        C{--stream}: bytes verified each way, ended by a half-close the
        server answers by closing; status 0.
        """
        result = load("-c", self.connect, "--stream", "--connections", "2", "--duration", "1")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertRegex(result.stdout, r"[\d,]+ bytes verified in [\d.]+ s: [\d.,]+ MB/s each way")
        self.assertIn("errors: none", result.stdout)

    def test_json(self) -> None:
        """
        C{--json}: every line of standard output is a JSON object, start,
        then the summary of a run that verified every message.
        """
        result = load("-c", self.connect, "--json", "--connections", "4", "--count", "400")
        self.assertEqual(result.returncode, 0, result.stderr)
        records = [json.loads(line) for line in result.stdout.splitlines()]
        self.assertEqual(records[0]["type"], "start")
        summary = records[-1]
        self.assertEqual(
            (summary["type"], summary["verified"], summary["ok"], summary["status"]),
            ("summary", 400, True, 0),
        )

    def test_thresholds(self) -> None:
        """
        A p99 bound no run can keep fails the run (status 1, the reason in
        one line); one every run keeps passes it.
        """
        failing = load(
            "-c", self.connect, "--count", "200", "--pipeline", "4", "--max-p99", "0.0001"
        )
        self.assertEqual(failing.returncode, 1)
        [line] = failing.stderr.splitlines()[-1:]
        self.assertRegex(
            line, r"^uppercase-client: p99 latency [\d.]+ ms is over --max-p99 0\.0001$"
        )
        passing = load(
            "-c", self.connect, "--count", "200", "--pipeline", "4", "--max-p99", "60000"
        )
        self.assertEqual(passing.returncode, 0, passing.stderr)
        self.assertIn("threshold: p99 latency", passing.stdout)

    def test_interrupted(self) -> None:
        """
        SIGINT during a long run: the summary is printed and the status is
        130.
        """
        deliverSigintToChildren(self)
        client = ClientProcess("-c", self.connect, "--rate", "200", "--duration", "60")
        self.addCleanup(client.stopIfRunning)
        assert client.process.stderr is not None
        # The first progress line says it is running.
        readable, _, _ = select.select([client.process.stderr], [], [], DEADLINE)
        self.assertTrue(readable)
        client.signal(signal.SIGINT)
        status, out, err = client.finish()
        self.assertEqual(status, 130, err)
        self.assertRegex(out, r"\d+ sent, \d+ verified, 0 failed")
        self.assertEqual(err.splitlines()[-1], "uppercase-client: interrupted by SIGINT")


class StalledServerTests(SynchronousTestCase):
    """
    Open loop: a server stopped mid-run shows in the latencies.
    """

    def test_stallInTheTail(self) -> None:
        """
        At 100 messages/s, the server stopped (SIGSTOP) for at least half a
        second: the largest latency is at least the stall (less one
        message's interval), however low the rate.
        """
        server = Server("--quiet")
        self.addCleanup(server.stop)
        client = ClientProcess(
            "-c", f"tcp:127.0.0.1:{server.port}", "--rate", "100", "--duration", "4", "--json"
        )
        self.addCleanup(client.stopIfRunning)
        self.assertEqual(json.loads(client.readLine())["type"], "start")
        client.readLine()  # the first second's interval: the run is going
        server.process.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            # Wait (bounded) for the client to report a second in which the
            # server answered nothing: the stall is on.
            while True:
                interval = json.loads(client.readLine())
                if interval["messages_per_s"] == 0 or time.monotonic() - stopped > 0.6:
                    break
        finally:
            stall = time.monotonic() - stopped
            server.process.send_signal(signal.SIGCONT)
        status, out, err = client.finish()
        self.assertEqual(status, 0, err)
        summary = json.loads(out.splitlines()[-1])
        self.assertGreaterEqual(summary["latency_ms"]["max"], (stall - 0.01) * 1000 * 0.99)
        self.assertEqual(summary["failed"], 0)


class WrongPeerTests(SynchronousTestCase):
    """
    A peer that echoes without uppercasing gets every message reported.
    """

    def test_rawEchoRandom(self) -> None:
        """
        Random payloads to a plain echo: every message is a wrong reply,
        the first is located (connection, message, byte), status 1.
        """
        peer = RawEcho()
        self.addCleanup(peer.close)
        result = load(
            "-c",
            f"tcp:127.0.0.1:{peer.port}",
            "--connections",
            "3",
            "--pipeline",
            "4",
            "--count",
            "300",
        )
        self.assertEqual(result.returncode, 1)
        self.assertIn("300 sent, 0 verified, 300 failed, 0 lost", result.stdout)
        self.assertIn("errors: 300 mismatch", result.stdout)
        [line] = result.stderr.splitlines()[-1:]
        self.assertRegex(
            line,
            r"^uppercase-client: 300 wrong replies; first: connection \d, message 1, byte 0 "
            r"\(stream offset 0\): expected [0-9a-f]{2}, received [0-9a-f]{2}; ",
        )

    def test_lineEchoText(self) -> None:
        """
        Text payloads to a line echo: every message reported, status 1.
        """
        peer = Peer(echo)
        self.addCleanup(peer.close)
        result = load(
            "-c",
            f"tcp:127.0.0.1:{peer.port}",
            "--payload",
            "text",
            "--size",
            "12",
            "--count",
            "50",
        )
        self.assertEqual(result.returncode, 1)
        self.assertIn("50 sent, 0 verified, 50 failed", result.stdout)

    def test_streamToRawEcho(self) -> None:
        """
        C{--stream} to a plain echo: mismatches reported, status 1.
        """
        peer = RawEcho()
        self.addCleanup(peer.close)
        result = load("-c", f"tcp:127.0.0.1:{peer.port}", "--stream", "--duration", "0.5")
        self.assertEqual(result.returncode, 1)
        self.assertRegex(result.stderr, r"wrong 64-byte stretch(es)? of the streams; first: ")


class EndpointTests(SynchronousTestCase):
    """
    The same load run over UNIX sockets, TLS and PROXY headers.
    """

    def test_unix(self) -> None:
        """
        Over a UNIX socket: every message verified; TCP_INFO is n/a.
        """
        folder = tempfile.mkdtemp()
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", folder]))
        path = os.path.join(folder, "u.sock")
        server = Twistd("uppercase", "--quiet", "--listen", f"unix:{path}")
        self.addCleanup(server.stop)
        server.waitFor("serving on")
        result = load("-c", f"unix:{path}", "--connections", "4", "--count", "400")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("tcp: n/a", result.stdout)

    def test_tls(self) -> None:
        """
        Over TLS with a real handshake: every message verified.
        """
        requireTLS()
        folder = tempfile.mkdtemp()
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", folder]))
        key, cert, roots = makeCertificate(folder)
        server = Server(
            "--quiet", listen=f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
        )
        self.addCleanup(server.stop)
        result = load(
            "-c",
            f"tls:localhost:{server.port}:trustRoots={roots}",
            "--connections",
            "4",
            "--pipeline",
            "4",
            "--count",
            "400",
        )
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_tlsHandshakeFailedSentNothing(self) -> None:
        """
        A server whose certificate is not trusted: the handshake fails, so
        no message left the client and none counts as sent (the run fails
        with the TLS error by kind).
        """
        requireTLS()
        folder = tempfile.mkdtemp()
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", folder]))
        key, cert, roots = makeCertificate(folder)
        server = Server(
            "--quiet", listen=f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
        )
        self.addCleanup(server.stop)
        result = load("-c", f"tls:localhost:{server.port}", "--connections", "2", "--count", "4")
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn("\n0 sent, 0 verified, 0 failed, 0 lost", result.stdout)
        self.assertIn("errors: 2 untrusted certificate\n", result.stdout)

    def test_sendProxy(self) -> None:
        """
        C{--send-proxy v1} and C{v2} against a C{haproxy:} listener: every
        message verified (the ping-like client too), and the server logs
        the connections with the addresses the header gave; without it, the
        server refuses the stream and the run fails.
        """
        server = Server(listen="haproxy:tcp:0:interface=127.0.0.1")
        self.addCleanup(server.stop)
        connect = f"tcp:127.0.0.1:{server.port}"
        for version in ("v1", "v2"):
            result = load(
                "-c", connect, "--send-proxy", version, "--connections", "3", "--count", "90"
            )
            self.assertEqual(result.returncode, 0, (version, result.stderr))
        server.waitFor(r"Connection from 127\.0\.0\.1 port \d+")
        ping = load("-c", connect, "--send-proxy", "v2", "-n", "2", "-i", "0")
        self.assertEqual(ping.returncode, 0, ping.stderr)
        self.assertTrue(ping.stdout.startswith("HELLO\nHELLO\n2 sent, 2 received, 2 verified"))
        without = load("-c", connect, "--count", "5", "--size", "10", "--timeout", "5")
        self.assertEqual(without.returncode, 1)


class BehindHAProxyTests(SynchronousTestCase):
    """
    Integrity through a real proxy: HAProxy with send-proxy-v2 in front of
    the server.
    """

    def setUp(self) -> None:
        if not HAPROXY:
            if os.environ.get("CI"):
                raise AssertionError("haproxy is not installed (.ci/run installs it)")
            raise SkipTest("haproxy is not installed (apt-get install haproxy)")
        self.server = Server("--quiet", listen="haproxy:tcp:0:interface=127.0.0.1")
        self.addCleanup(self.server.stop)
        self.proxy = HAProxy(self.server.port, "send-proxy-v2")
        self.addCleanup(self.proxy.stop)
        self.connect = f"tcp:127.0.0.1:{self.proxy.port}"

    def test_messages(self) -> None:
        """
        20 connections, pipeline 8, 1 KiB random messages, through HAProxy:
        every one verified.
        """
        result = load(
            "-c",
            self.connect,
            "--connections",
            "20",
            "--pipeline",
            "8",
            "--size",
            "1024",
            "--count",
            "20000",
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("20,000 sent, 20,000 verified, 0 failed, 0 lost", result.stdout)

    def test_stream(self) -> None:
        """
        Full-duplex streams through HAProxy, ended by half-closes: every
        byte back, then the close.
        """
        result = load("-c", self.connect, "--stream", "--connections", "4", "--duration", "1")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("errors: none", result.stdout)


class ProberTests(SynchronousTestCase):
    """
    C{twistd -n uppercase-client --rate R --count 0 --metrics ...} probes
    forever and exports its figures.
    """

    def test_metricsScraped(self) -> None:
        """
        The prober's metrics endpoint serves verified messages and a latency
        histogram; SIGTERM ends it with its summary logged.
        """
        server = Server("--quiet")
        self.addCleanup(server.stop)
        prober = Twistd(
            "uppercase-client",
            "-c",
            f"tcp:127.0.0.1:{server.port}",
            "--rate",
            "50",
            "--count",
            "0",
            "--metrics",
            "tcp:0:interface=127.0.0.1",
        )
        self.addCleanup(prober.stop)
        port = int(prober.waitFor(r"MetricsSite starting on (\d+)").group(1))
        scraped = {"text": ""}

        def verifiedInHistogram() -> bool:
            scraped["text"] = scrape(port)
            match = re.search(
                r"^uppercase_client_latency_seconds_count (\S+)$", scraped["text"], re.M
            )
            return match is not None and float(match.group(1)) > 0

        self.assertTrue(poll(verifiedInHistogram), scraped["text"])
        text = scraped["text"]
        self.assertRegex(text, r"(?m)^uppercase_client_messages_verified_total [1-9]")
        self.assertRegex(text, r"(?m)^uppercase_client_messages_failed_total 0\.0$")
        self.assertIn("uppercase_client_connections_open 1.0", text)
        prober.stop(signal.SIGTERM)
        self.assertRegex(prober.output, r"Load run over: \d+ verified, 0 failed")
        self.assertNotIn("Traceback", prober.output)


def scrape(port: int) -> str:
    """
    GET /metrics on 127.0.0.1:PORT.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")
