"""
Starting the server under each runner: a failure to listen is one line on
standard error and a non-zero status, however twistd or twist is run; every
listener gets the default backlog.
"""

from __future__ import annotations

import os
import signal
import socket
import tempfile
from typing import Sequence

from twisted.trial.unittest import SynchronousTestCase

from ._process import DEADLINE, Server, Twist, listenBacklog, run, script


class PortInUseTests(SynchronousTestCase):
    """
    A port already in use, under every way of running the server.
    """

    def setUp(self) -> None:
        self.taken = socket.socket()
        self.addCleanup(self.taken.close)
        self.taken.bind(("127.0.0.1", 0))
        self.taken.listen(1)
        self.description = f"tcp:{self.taken.getsockname()[1]}:interface=127.0.0.1"
        self.line = f"cannot listen on {self.description}: Address already in use"
        self.folder = tempfile.mkdtemp()
        self.pidfile = os.path.join(self.folder, "u.pid")
        self.logfile = os.path.join(self.folder, "u.log")

    def read(self, path: str) -> str:
        with open(path) as f:
            return f.read()

    def test_foreground(self) -> None:
        """
        C{twistd -n}: one line on standard error, status 1, no traceback
        anywhere, and no pid file left behind.
        """
        result = run(
            script("twistd")
            + ["-n", f"--pidfile={self.pidfile}", "uppercase", "-l", self.description]
        )
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr, f"twistd uppercase: {self.line}\n")
        self.assertNotIn("Traceback", result.stdout)
        self.assertFalse(os.path.exists(self.pidfile))

    def test_foregroundWithLogFile(self) -> None:
        """
        C{twistd -n --logfile}: the line is on standard error as well as in
        the log file.
        """
        result = run(
            script("twistd")
            + ["-n", "--pidfile=", f"--logfile={self.logfile}", "uppercase", "-l", self.description]
        )
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr, f"twistd uppercase: {self.line}\n")
        self.assertIn(self.line, self.read(self.logfile))
        self.assertNotIn("Traceback", self.read(self.logfile))

    def test_daemon(self) -> None:
        """
        C{twistd} in daemon mode ends at once (it used to hang for ever),
        with a non-zero status and the reason on standard error, as
        C{twistd web} does, and removes its pid file.
        """
        result = run(
            script("twistd")
            + [
                f"--pidfile={self.pidfile}",
                f"--logfile={self.logfile}",
                "uppercase",
                "-l",
                self.description,
            ]
        )
        self.assertEqual(result.returncode, 1)
        self.assertIn(self.line, result.stderr)
        self.assertIn(self.line, self.read(self.logfile))
        self.assertFalse(os.path.exists(self.pidfile))

    def test_twist(self) -> None:
        """
        C{twist}: one line naming C{twist uppercase}, status 1, no
        traceback.
        """
        result = run(script("twist") + ["uppercase", "-l", self.description])
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr, f"twist uppercase: {self.line}\n")
        self.assertNotIn("Traceback", result.stdout)

    def test_metricsPortNamed(self) -> None:
        """
        A C{--metrics} port in use, under C{twistd -n} and C{twist}: the one
        line says it is the metrics port, so that the user knows which
        option to change.
        """
        for runner in ("twistd", "twist"):
            args = ["-n", "--pidfile="] if runner == "twistd" else []
            result = run(
                script(runner)
                + args
                + ["uppercase", "-l", "tcp:0:interface=127.0.0.1", "--metrics", self.description]
            )
            self.assertEqual(result.returncode, 1)
            self.assertEqual(
                result.stderr,
                f"{runner} uppercase: cannot listen for metrics on {self.description}: "
                "Address already in use\n",
            )


class TwistTests(SynchronousTestCase):
    """
    C{twist uppercase}, the runner recommended under supervisors, serves and
    stops gracefully.
    """

    def test_servesAndStops(self) -> None:
        """
        It logs its port, echoes, and on SIGTERM drains and exits by the
        signal, with no traceback.
        """
        server = Twist("uppercase", "--listen", "tcp:0:interface=127.0.0.1")
        self.addCleanup(server.stop)
        port = int(server.waitFor(r"UppercaseFactory.*starting on (\d+)").group(1))
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"twist\n")
            self.assertEqual(s.recv(6), b"TWIST\n")
        self.assertEqual(server.stop(signal.SIGTERM), -signal.SIGTERM)
        self.assertNotIn("Traceback", server.output)

    def test_usageErrorNamesTwist(self) -> None:
        """
        A bad option under C{twist} names C{twist uppercase}.
        """
        result = run(script("twist") + ["uppercase", "--max-per-ip", "x"])
        self.assertEqual(result.returncode, 2)
        self.assertTrue(result.stderr.startswith("twist uppercase: --max-per-ip"), result.stderr)


class BacklogTests(SynchronousTestCase):
    """
    Every TCP listener gets a backlog of 511 unless its endpoint says
    otherwise (Twisted's own default is 50).
    """

    def test_listenOptionGetsDefault(self) -> None:
        """
        C{--listen tcp:PORT} and C{--listen haproxy:tcp:PORT} listen with a
        backlog of 511; C{backlog=N} in the string is kept.
        """
        for listen, expected in [
            ("tcp:0:interface=127.0.0.1", 511),
            ("haproxy:tcp:0:interface=127.0.0.1", 511),
            ("tcp:0:interface=127.0.0.1:backlog=7", 7),
        ]:
            server = Server("--quiet", listen=listen)
            try:
                self.assertEqual(listenBacklog(server.port), expected, listen)
            finally:
                server.stop()


class ModuleTests(SynchronousTestCase):
    """
    C{python -m uppercase} runs the server in the foreground, and
    C{python -m uppercase client} the client.
    """

    def test_serverAndClient(self) -> None:
        """
        The server serves and its log says so; the client verifies its
        replies against it; a usage error names C{python -m uppercase}.
        """
        import subprocess
        import sys

        server = ModuleServer("--listen", "tcp:0:interface=127.0.0.1")
        self.addCleanup(server.stop)
        port = int(server.waitFor(r"UppercaseFactory.*starting on (\d+)").group(1))
        result = run(
            [sys.executable, "-m", "uppercase", "client", "-c", f"tcp:127.0.0.1:{port}", "-n", "2"]
            + ["-i", "0"]
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(result.stdout.startswith("HELLO\nHELLO\n2 sent, 2 received, 2 verified"))
        bad = subprocess.run(
            [sys.executable, "-m", "uppercase", "--max-per-ip", "x"],
            capture_output=True,
            text=True,
            timeout=DEADLINE,
        )
        self.assertEqual(bad.returncode, 2)
        self.assertTrue(bad.stderr.startswith("python -m uppercase: --max-per-ip"), bad.stderr)


class ModuleServer(Twist):
    """
    C{python -m uppercase ARGS} in the background.
    """

    def command(self, args: Sequence[str]) -> list[str]:
        import sys

        return [sys.executable, "-m", "uppercase", *args]
