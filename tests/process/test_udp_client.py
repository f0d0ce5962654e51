"""
C{uppercase-client -c udp:...} as a real process on loopback: ping and load
modes against a Python UDP echo, through a deterministic lossy forwarder
whose record the client's counts must match datagram for datagram, against
socat's UDP echoes (plain and uppercasing: servers nobody here wrote), and
C{twistd uppercase-client} as a UDP prober.  No fixed port; every wait is
bounded.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from typing import Any, Dict, List

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from ._process import DEADLINE, run, script
from ._udp import LossyForwarder, UDPEcho

SOCAT = shutil.which("socat")


def client(*args: str, timeout: float = DEADLINE) -> subprocess.CompletedProcess[str]:
    """
    Run C{uppercase-client ARGS} to completion.
    """
    return run(script("uppercase-client") + list(args), timeout=timeout)


def freeUDPPort() -> int:
    """
    A loopback UDP port nothing is bound to (bound, then released).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def summary(stdout: str) -> Dict[str, Any]:
    """
    The last JSON line of C{stdout}: the summary.
    """
    record: Dict[str, Any] = json.loads(stdout.splitlines()[-1])
    return record


class Socat:
    """
    socat as a UDP echo on a free loopback port: C{PIPE} (every datagram
    back unchanged) or C{tr a-z A-Z} (uppercased); ready once it answers a
    probe.
    """

    def __init__(self, plain: bool) -> None:
        if not SOCAT:
            if os.environ.get("CI"):
                raise AssertionError("socat is not installed (.ci/run installs it)")
            raise SkipTest("socat is not installed (apt-get install socat)")
        self.port = freeUDPPort()
        if plain:
            argv = [SOCAT, "-T5", f"UDP-LISTEN:{self.port},bind=127.0.0.1,fork,reuseaddr", "PIPE"]
        else:
            argv = [SOCAT, f"UDP-RECVFROM:{self.port},bind=127.0.0.1,fork", "EXEC:tr a-z A-Z"]
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        self._probe()

    def _probe(self) -> None:
        deadline = time.monotonic() + DEADLINE
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.settimeout(0.2)
            probe.connect(("127.0.0.1", self.port))
            while time.monotonic() < deadline:
                try:
                    probe.send(b"probe")
                    if probe.recv(100):
                        return
                except (ConnectionRefusedError, socket.timeout):
                    pass
        raise AssertionError(f"socat did not answer on UDP port {self.port}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(DEADLINE)


class PingTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.echo = UDPEcho()
        self.addCleanup(self.echo.close)

    def test_ping(self) -> None:
        """
        The ping-like client over UDP: each reply with its time, then the
        summary with the loss; exit status 0.
        """
        done = client("-c", f"udp:127.0.0.1:{self.echo.port}", "-n", "3", "-i", "0.05", "--rtt")
        self.assertEqual((done.returncode, done.stderr), (0, ""))
        lines = done.stdout.splitlines()
        self.assertEqual([line.split("  ")[0] for line in lines[:3]], ["HELLO"] * 3)
        self.assertIn("seq=3 time=", lines[2])
        self.assertTrue(lines[3].startswith("3 sent, 3 received, 3 verified, 0 lost, rtt "))

    def test_ipv6(self) -> None:
        """
        C{udp:[::1]:PORT} reaches an IPv6 echo.
        """
        echo = UDPEcho(host="::1")
        self.addCleanup(echo.close)
        done = client("-c", f"udp:[::1]:{echo.port}", "-n", "2", "-i", "0")
        self.assertEqual((done.returncode, done.stderr), (0, ""))

    def test_refused(self) -> None:
        """
        Nothing listening: one line as TCP's, exit status 1.
        """
        port = freeUDPPort()
        done = client("-c", f"udp:127.0.0.1:{port}", "-n", "3", "-i", "0.05")
        self.assertEqual(done.returncode, 1)
        self.assertEqual(
            done.stderr,
            f"uppercase-client: cannot reach udp:127.0.0.1:{port}: Connection refused\n",
        )

    def test_loadNothingLost(self) -> None:
        """
        An open loop at 1,000 datagrams/s against a local echo loses none.
        """
        done = client(
            "-c", f"udp:127.0.0.1:{self.echo.port}", "--rate", "1000", "--duration", "1", "--json"
        )
        result = summary(done.stdout)
        self.assertEqual(done.returncode, 0, done.stderr)
        datagrams = result["datagrams"]
        self.assertGreaterEqual(datagrams["sent"], 900)
        self.assertEqual(datagrams["lost"], 0)
        self.assertEqual(datagrams["verified"], datagrams["sent"])
        self.assertEqual((result["sent"], result["lost"]), (datagrams["sent"], 0))


class LossyForwarderTests(SynchronousTestCase):
    def test_countsMatchWhatTheForwarderDid(self) -> None:
        """
        Through a forwarder that drops every 10th datagram, sends some
        twice and holds others back past later ones, the client's counts
        are what the forwarder did, datagram for datagram; the loss fails
        the run, as --max-loss 0 says.
        """
        echo = UDPEcho()
        self.addCleanup(echo.close)
        forwarder = LossyForwarder(echo.port)
        argv = ["-c", f"udp:127.0.0.1:{forwarder.port}", "--rate", "200", "--count", "300"]
        done = client(*argv, "--timeout", "1", "--json")
        forwarder.close()
        record = forwarder.record
        result = summary(done.stdout)
        datagrams = result["datagrams"]
        self.assertEqual(record["received"], 300)
        self.assertEqual(record["dropped"], 30)
        self.assertGreater(record["reordered"], 0)
        self.assertEqual(
            datagrams,
            {
                "sent": 300,
                "received": 300 - record["dropped"] + record["duplicated"],
                "verified": 300 - record["dropped"],
                "corrupted": 0,
                "lost": record["dropped"],
                "late": 0,
                "duplicated": record["duplicated"],
                "reordered": record["reordered"],
                "foreign": 0,
            },
        )
        self.assertEqual(done.returncode, 1)
        self.assertEqual(
            done.stderr.splitlines()[-1], "uppercase-client: loss 10.000 % is over --max-loss 0"
        )

    def test_withinMaxLoss(self) -> None:
        """
        The same losses within --max-loss: exit status 0.
        """
        echo = UDPEcho()
        self.addCleanup(echo.close)
        forwarder = LossyForwarder(echo.port)
        self.addCleanup(forwarder.close)
        argv = ["-c", f"udp:127.0.0.1:{forwarder.port}", "--rate", "200", "--count", "100"]
        done = client(*argv, "--timeout", "1", "--max-loss", "10")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("10 lost (10.000%)", done.stdout)


class SocatTests(SynchronousTestCase):
    def test_plain(self) -> None:
        """
        C{--plain} against socat's plain UDP echo: verified, ping and load;
        without C{--plain}, the replies are not what the uppercase echo
        sends, and the run says where.
        """
        socat = Socat(plain=True)
        self.addCleanup(socat.stop)
        target = f"udp:127.0.0.1:{socat.port}"
        done = client("-c", target, "--plain", "-n", "3", "-i", "0.05")
        self.assertEqual((done.returncode, done.stderr), (0, ""))
        self.assertEqual(done.stdout.splitlines()[:3], ["hello"] * 3)
        # A closed loop, one datagram in flight: socat's PIPE is a byte
        # stream, which joins datagrams that arrive together.
        done = client("-c", target, "--plain", "--pipeline", "1", "--count", "200", "--json")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(summary(done.stdout)["datagrams"]["verified"], 200)
        done = client("-c", target, "-n", "1")
        self.assertEqual(done.returncode, 1)
        self.assertIn("reply 1 does not match at byte 26", done.stderr)

    def test_uppercase(self) -> None:
        """
        The default client against socat relaying each datagram through
        C{tr a-z A-Z}: verified.
        """
        socat = Socat(plain=False)
        self.addCleanup(socat.stop)
        done = client("-c", f"udp:127.0.0.1:{socat.port}", "-n", "3", "-i", "0.05")
        self.assertEqual((done.returncode, done.stderr), (0, ""))


class TwistdProberTests(SynchronousTestCase):
    def test_prober(self) -> None:
        """
        C{twistd -n uppercase-client -c udp:...} probes at ping's pace,
        logs the summary with the datagram counts, and exits 0.
        """
        echo = UDPEcho()
        self.addCleanup(echo.close)
        argv: List[str] = ["-n", "--pidfile=", "uppercase-client"]
        argv += ["-c", f"udp:127.0.0.1:{echo.port}", "-n", "3", "-i", "0.1"]
        done = run(script("twistd") + argv)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertIn("udp: 3 sent, 3 received, 3 verified, 0 corrupted, 0 lost", done.stdout)
