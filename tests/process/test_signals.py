"""
Signals operators send a running server: none but SIGTERM and SIGINT stops
it, and SIGUSR1 reopens a log file that logrotate moved away.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from ._process import DEADLINE, Server, script
from .test_robustness import poll


def echoes(s: socket.socket, message: bytes) -> bool:
    s.sendall(message)
    received = b""
    while len(received) < len(message):
        chunk = s.recv(len(message) - len(received))
        if not chunk:
            return False
        received += chunk
    return received == message.upper()


class SignalTests(SynchronousTestCase):
    """
    SIGHUP (a closed terminal), SIGUSR1 (logrotate) and SIGUSR2 leave the
    server and its connections alone.
    """

    def test_otherSignalsDoNotStopTheServer(self) -> None:
        """
        After SIGHUP, SIGUSR1 and SIGUSR2, each logged in one line, an open
        connection still echoes and new ones are accepted.
        """
        server = Server("--quiet")
        self.addCleanup(server.stop)
        server.waitFor("serving on")
        s = server.connect()
        self.addCleanup(s.close)
        self.assertTrue(echoes(s, b"before\n"))
        for number, line in [
            (signal.SIGHUP, "Received SIGHUP: ignored"),
            (signal.SIGUSR1, "Received SIGUSR1: logging to standard output, no log file to reopen"),
            (signal.SIGUSR2, "Received SIGUSR2: ignored"),
        ]:
            server.process.send_signal(number)
            server.waitFor(line)
        self.assertIsNone(server.process.poll())
        self.assertTrue(echoes(s, b"after\n"))
        with server.connect() as other:
            self.assertTrue(echoes(other, b"new\n"))
        self.assertNotIn("Traceback", server.output)


class LogFileTests(SynchronousTestCase):
    """
    With C{--logfile}, SIGUSR1 follows logrotate's convention.
    """

    def test_reopenAfterRotation(self) -> None:
        """
        logrotate renames the log file, then sends SIGUSR1: the server
        reopens its log at the same path, and later lines go there, not to
        the renamed file.
        """
        import subprocess

        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)
        log = os.path.join(folder, "u.log")
        process = subprocess.Popen(
            script("twistd")
            + [
                "-n",
                "--pidfile=",
                f"--logfile={log}",
                "uppercase",
                "--listen",
                "tcp:0:interface=127.0.0.1",
            ],
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.addCleanup(process.wait, DEADLINE)
        self.addCleanup(process.terminate)

        def read(path: str) -> str:
            try:
                with open(path) as f:
                    return f.read()
            except FileNotFoundError:
                return ""

        self.assertTrue(poll(lambda: "serving on" in read(log)))
        port = int(read(log).split("starting on ")[1].split()[0])
        os.rename(log, log + ".1")
        process.send_signal(signal.SIGUSR1)
        self.assertTrue(poll(lambda: "Received SIGUSR1: reopened" in read(log)))
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as s:
            self.assertTrue(echoes(s, b"rotated\n"))
        self.assertTrue(poll(lambda: "Received 8 bytes" in read(log)))
        self.assertNotIn("Received 8 bytes", read(log + ".1"))
        self.assertIn("serving on", read(log + ".1"))
