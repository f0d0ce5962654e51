"""
The benchmark's UDP load generator (benchmarks/loadgen.c, mode udp), compiled
and run against the C UDP echo and against echoes in this test: the figures
docs/performance.md quotes rest on its verifying every reply and counting a
lost datagram instead of waiting for it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from typing import Callable

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.process._process import DEADLINE

BENCHMARKS = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks")


def compiled(folder: str, source: str) -> str:
    """
    C{source} (under benchmarks/) compiled into C{folder} with cc -O2; the
    test is skipped where there is no C compiler, except in CI.
    """
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        if os.environ.get("CI"):
            raise AssertionError("no C compiler (cc or gcc): .ci/run installs gcc")
        raise SkipTest("no C compiler (apt-get install gcc)")
    binary = os.path.join(folder, os.path.basename(source)[:-2])
    subprocess.run(
        [compiler, "-O2", "-o", binary, os.path.join(BENCHMARKS, source)],
        check=True,
        timeout=DEADLINE,
    )
    return binary


class ThreadEcho:
    """
    A UDP echo on a loopback port, in a thread: each datagram is answered
    with the datagrams C{reply(n, datagram)} returns (none: dropped), n
    counting from 1.  L{stop} first answers what is still queued.
    """

    def __init__(self, reply: Callable[[int, bytes], list[bytes]]) -> None:
        self.reply = reply
        self.received = self.answered = self.replies = 0
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.05)
        self.port = self.socket.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                datagram, source = self.socket.recvfrom(65536)
            except socket.timeout:
                if self._stop:
                    return
                continue
            self.received += 1
            answers = self.reply(self.received, datagram)
            for answer in answers:
                self.socket.sendto(answer, source)
            self.answered += bool(answers)
            self.replies += len(answers)

    def stop(self) -> None:
        self._stop = True
        self._thread.join(DEADLINE)
        self.socket.close()


def waitForEcho(port: int) -> None:
    """
    Wait until the uppercase UDP echo on C{port} of 127.0.0.1 answers: until then a
    datagram sent to it is lost (loadgen's first ones were, and with every
    slot in flight lost it measured no round trip at all).
    """
    deadline = time.monotonic() + DEADLINE
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.05)
        while time.monotonic() < deadline:
            probe.sendto(b"ready?", ("127.0.0.1", port))  # an uppercase echo
            try:
                if probe.recv(64) == b"READY?":
                    return
            except (socket.timeout, ConnectionRefusedError):
                continue
    raise AssertionError(f"no UDP echo on port {port} within {DEADLINE} s")


class LoadgenUDPTests(SynchronousTestCase):
    """
    loadgen's udp mode verifies, counts and never waits on a lost datagram.
    """

    def setUp(self) -> None:
        folder = tempfile.TemporaryDirectory()
        self.addCleanup(folder.cleanup)
        self.folder = folder.name
        self.loadgen = compiled(self.folder, "loadgen.c")

    def loadgen_(self, port: int, *args: str, timeout: str = "1") -> tuple[int, dict]:
        """Run loadgen udp against C{port}; its exit status and its JSON."""
        result = subprocess.run(
            [self.loadgen, "127.0.0.1", str(port), "udp", *args],
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            env={**os.environ, "LOADGEN_TIMEOUT": timeout},
        )
        return result.returncode, json.loads(result.stdout)

    def echo(self, reply: Callable[[int, bytes], list[bytes]]) -> ThreadEcho:
        echo = ThreadEcho(reply)
        self.addCleanup(echo.stop)
        return echo

    def test_cEcho(self) -> None:
        """
        Against the C UDP echo, every datagram of 2 sockets x 4 in flight
        (and a 65,507-byte one) comes back verified: none wrong, none lost.
        """
        echo = compiled(self.folder, "baselines/c_udp_echo.c")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen([echo, str(port)])
        self.addCleanup(server.wait)
        self.addCleanup(server.kill)
        waitForEcho(port)
        for args in (("2", "512", "4"), ("1", "65507", "1")):
            status, figures = self.loadgen_(port, *args, "0.2", "0.5")
            self.assertEqual(
                (status, figures["wrong"], figures["lost"], figures["late"]), (0, 0, 0, 0)
            )
            self.assertGreater(figures["round_trips"], 0)

    def test_lostCountedExactly(self) -> None:
        """
        Against an echo that drops every 5th datagram, the run ends on time
        and each datagram sent is exactly one of: a round trip, lost (no
        reply within LOADGEN_TIMEOUT), or in flight at the end; none lost
        that was answered.
        """
        echo = self.echo(lambda n, d: [] if n % 5 == 0 else [d.upper()])
        status, figures = self.loadgen_(
            echo.port, "2", "64", "1", "0", "0.5", "400", timeout="0.05"
        )
        echo.stop()
        self.assertEqual(status, 0)
        self.assertEqual(
            figures["round_trips"] + figures["lost"] + figures["in_flight"], echo.received
        )
        self.assertGreater(figures["lost"], 0)
        self.assertLessEqual(figures["lost"], echo.received - echo.answered)

    def test_duplicatesAreLate(self) -> None:
        """
        A second reply to a datagram is counted late, not a second round
        trip: every other datagram answered twice, the round trips are the
        datagrams answered, the late replies the second ones read.
        """
        echo = self.echo(lambda n, d: [d.upper()] * (1 if n % 2 else 2))
        status, figures = self.loadgen_(echo.port, "1", "64", "1", "0", "0.3")
        echo.stop()
        self.assertEqual((status, figures["wrong"], figures["lost"]), (0, 0, 0))
        self.assertEqual(figures["round_trips"] + figures["in_flight"], echo.received)
        seconds = echo.replies - echo.answered
        # The last second reply may come after the run stopped reading.
        self.assertIn(figures["late"], (seconds, seconds - 1))
        self.assertGreater(figures["late"], 0)

    def test_wrongReplyStops(self) -> None:
        """
        An echo that does not uppercase gets the first reply reported wrong
        and a non-zero exit.
        """
        echo = self.echo(lambda n, d: [d])
        status, figures = self.loadgen_(echo.port, "1", "64", "1", "0", "2")
        self.assertEqual((status, figures["wrong"], figures["round_trips"]), (1, 1, 0))

    def test_nobodyThere(self) -> None:
        """
        With no server at all, the run still ends after its time, every
        datagram counted lost or in flight, none answered.
        """
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        status, figures = self.loadgen_(port, "2", "64", "2", "0", "0.5", timeout="0.1")
        self.assertEqual((status, figures["round_trips"]), (0, 0))
        self.assertGreater(figures["lost"], 0)
