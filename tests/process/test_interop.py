"""
Interoperability over TCP with tools nobody here wrote: our C{--plain} server
against socat, ncat and Perl's core C{Net::Ping}; our client C{--plain}
against inetd's built-in echo service (L{tests.process._inetd}).

Each tool must be installed in CI (C{CI} set), where a missing one fails the
test; elsewhere the test is skipped.  Debian packages: C{socat}, C{ncat},
C{perl} (C{Net::Ping} is a core module), C{openbsd-inetd} and C{iproute2}
(the inetd tests also need root, for a network namespace).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from ._inetd import DATAGRAM_HOST, ECHO_PORT, Inetd
from ._process import DEADLINE, Twistd, script

EVERY_BYTE = bytes(range(256)) * 1024
"""256 KiB holding every byte value, NUL and 0x80-0xff included."""

NET_PING = """\
use Net::Ping;
my ($proto, $port, $bytes, $timeout) = @ARGV;
my $p = Net::Ping->new($proto, $timeout, $bytes);
$p->port_number($port);
print $p->ping("127.0.0.1") ? "alive\\n" : "unreachable\\n";
"""
"""Perl's C{Net::Ping}: C{tcp} checks the connect to the echo port;
C{stream} also sends C{bytes} bytes and checks that they come back as sent."""


def require(tool: str) -> str:
    """
    The path of C{tool}; the test is skipped without it, or fails in CI.
    """
    path = shutil.which(tool)
    if path is not None:
        return path
    if os.environ.get("CI"):
        raise AssertionError(f"{tool} is not installed (.ci/run installs it)")
    raise SkipTest(f"{tool} is not installed")


def pipe(argv: list[str], data: bytes) -> subprocess.CompletedProcess[bytes]:
    """
    Run C{argv} with C{data} on its standard input, to completion.
    """
    return subprocess.run(argv, input=data, capture_output=True, timeout=DEADLINE)


class PlainServerTests(SynchronousTestCase):
    """
    C{twistd -n uppercase --plain} serves tools that expect RFC 862.
    """

    def setUp(self) -> None:
        self.server = Twistd(
            "uppercase", "--plain", "--quiet", "--listen", "tcp:0:interface=127.0.0.1"
        )
        self.addCleanup(self.server.stop)
        self.port = int(self.server.waitFor(r"UppercaseFactory.*starting on (\d+)").group(1))
        self.server.waitFor("serving on")

    def test_socat(self) -> None:
        """
        socat sends 256 KiB of every byte value, half-closes at the end of
        its input (its shut-down), and gets every byte back unchanged
        before the server closes.
        """
        socat = require("socat")
        result = pipe([socat, "-t", str(DEADLINE), "-", f"TCP:127.0.0.1:{self.port}"], EVERY_BYTE)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(result.stdout == EVERY_BYTE, f"{len(result.stdout)} bytes back")

    def test_ncat(self) -> None:
        """
        ncat likewise: every byte back unchanged; at the end of its input it
        half-closes, and ends when the server has sent all and closed.
        """
        ncat = require("ncat")
        result = pipe([ncat, "127.0.0.1", str(self.port)], EVERY_BYTE)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(result.stdout == EVERY_BYTE, f"{len(result.stdout)} bytes back")

    def test_netPing(self) -> None:
        """
        Net::Ping finds the echo port alive: in C{tcp} mode (the connect),
        and in C{stream} mode, which checks that its bytes come back as
        sent; the uppercase echo fails that check, which shows it can.
        """
        perl = require("perl")

        def ping(proto: str, port: int, timeout: float = 5) -> str:
            result = subprocess.run(
                [perl, "-e", NET_PING, proto, str(port), "32", str(timeout)],
                capture_output=True,
                text=True,
                timeout=DEADLINE,
            )
            self.assertEqual(result.returncode, 0, result.stderr)
            return result.stdout

        self.assertEqual(ping("tcp", self.port), "alive\n")
        self.assertEqual(ping("stream", self.port), "alive\n")
        upper = Twistd("uppercase", "--quiet", "--listen", "tcp:0:interface=127.0.0.1")
        self.addCleanup(upper.stop)
        upperPort = int(upper.waitFor(r"UppercaseFactory.*starting on (\d+)").group(1))
        upper.waitFor("serving on")
        # (Its wrong reply is waited for until the timeout.)
        self.assertEqual(ping("stream", upperPort, 0.5), "unreachable\n")


class InetdEchoTests(SynchronousTestCase):
    """
    C{uppercase-client --plain} against inetd's built-in TCP echo, in every
    mode; without C{--plain} it says why the replies are wrong.
    """

    def setUp(self) -> None:
        self.inetd = Inetd(tcp=True)
        self.addCleanup(self.inetd.stop)
        self.client = script("uppercase-client") + ["-c", f"tcp:127.0.0.1:{ECHO_PORT}"]

    def test_ping(self) -> None:
        """
        The ping-like client: three replies, all verified, exit 0.
        """
        result = self.inetd.run(self.client + ["--plain", "-n", "3", "-i", "0"])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(
            result.stdout.startswith("hello\nhello\nhello\n3 sent, 3 received, 3 verified"),
            result.stdout,
        )

    def test_load(self) -> None:
        """
        A load run of random messages (every byte value) on two
        connections, pipelined, and a stream: all verified, exit 0.
        """
        load = ["--connections", "2", "--count", "400", "--size", "1000", "--pipeline", "8"]
        result = self.inetd.run(self.client + ["--plain", *load])
        self.assertEqual(result.returncode, 0, result.stderr + result.stdout)
        self.assertIn("400 sent, 400 verified, 0 failed, 0 lost", result.stdout)
        stream = ["--stream", "--count", "16", "--size", "65536"]
        result = self.inetd.run(self.client + ["--plain", *stream])
        self.assertEqual(result.returncode, 0, result.stderr + result.stdout)
        self.assertIn("1,048,576 bytes verified", result.stdout)

    def test_withoutPlain(self) -> None:
        """
        Without C{--plain}, the first reply is wrong, in one line that
        suggests C{--plain}; exit 1.
        """
        result = self.inetd.run(self.client + ["-n", "1"])
        self.assertEqual(result.returncode, 1)
        self.assertTrue(
            result.stderr.endswith("(unchanged: is it a plain RFC 862 echo? try --plain)\n"),
            result.stderr,
        )


class InetdDatagramEchoTests(SynchronousTestCase):
    """
    C{uppercase-client --plain} over UDP against inetd's built-in datagram
    echo (C{echo dgram udp ... internal}), which no one here wrote, at an
    address off loopback (inetd answers no datagram from 127.0.0.0/8).
    """

    def setUp(self) -> None:
        self.inetd = Inetd(tcp=False, udp=True)
        self.addCleanup(self.inetd.stop)
        self.client = script("uppercase-client") + ["-c", f"udp:{DATAGRAM_HOST}:{ECHO_PORT}"]

    def test_ping(self) -> None:
        """
        The ping-like client over UDP: three datagrams, each answered
        unchanged and verified, none lost; exit 0.
        """
        result = self.inetd.run(self.client + ["--plain", "-n", "3", "-i", "0.05"])
        self.assertEqual(result.returncode, 0, result.stderr + result.stdout)
        self.assertTrue(
            result.stdout.startswith("hello\nhello\nhello\n3 sent, 3 received, 3 verified, 0 lost"),
            result.stdout,
        )

    def test_load(self) -> None:
        """
        A UDP load run of random datagrams (every byte value) from two
        sockets at 200 datagrams/s: every datagram verified, none lost,
        duplicated or reordered, as the --json summary counts them.
        """
        load = ["--connections", "2", "--rate", "200", "--count", "200", "--size", "512", "--json"]
        result = self.inetd.run(self.client + ["--plain", *load])
        self.assertEqual(result.returncode, 0, result.stderr + result.stdout)
        summary = json.loads(result.stdout.splitlines()[-1])
        counts = summary["datagrams"]
        self.assertEqual(
            (counts["sent"], counts["verified"], counts["lost"], counts["duplicated"]),
            (200, 200, 0, 0),
        )

    def test_withoutPlain(self) -> None:
        """
        Without C{--plain}, the replies are counted corrupted (their bytes
        unchanged where uppercase ones were due), and the run fails: exit 1.
        """
        result = self.inetd.run(self.client + ["-n", "1"])
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("1 corrupted", result.stdout)
