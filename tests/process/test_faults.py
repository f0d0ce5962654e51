"""
Process tests: each kernel-level effect of C{--fault} (a TCP reset, a FIN
after exactly N bytes, a zero window) seen by a raw socket against the real
C{twistd uppercase}, with C{--workers} too, and a bad C{--fault}.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time

from twisted.trial.unittest import TestCase

from tests.process._process import DEADLINE, Server, receiveAll, run, script, sendInThread


def sendIgnoringErrors(s: socket.socket, data: bytes) -> threading.Thread:
    """
    Send C{data} from another thread; the connection may end under it.
    """

    def send() -> None:
        try:
            s.sendall(data)
        except OSError:
            pass

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


class KernelEffectTests(TestCase):
    """
    What the peer's kernel sees.
    """

    def test_reset(self) -> None:
        """
        C{reset,after=64KB}: the peer reads exactly 64,000 bytes, then its
        receive fails with ECONNRESET (an RST, not a FIN).
        """
        server = Server("--quiet", "--fault", "reset,after=64KB")
        self.addCleanup(server.stop)
        with server.connect() as s:
            sender = sendIgnoringErrors(s, b"r" * 200000)
            received = 0
            with self.assertRaises(ConnectionResetError):
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        self.fail(f"a FIN after {received} bytes, not a reset")
                    received += len(chunk)
            sender.join(DEADLINE)
        self.assertEqual(received, 64000)
        server.waitFor(r"faults: reset")

    def test_closeAfter(self) -> None:
        """
        C{close,after=10KB}: exactly 10,000 bytes, then the end of the stream.
        """
        server = Server("--quiet", "--fault", "close,after=10KB")
        self.addCleanup(server.stop)
        with server.connect() as s:
            sendInThread(s, b"c" * 30000)
            self.assertEqual(receiveAll(s), b"C" * 10000)

    def test_stallZeroWindow(self) -> None:
        """
        C{stall,after=1KB}: after 1,000 bytes the server neither sends nor
        reads: the peer's sending blocks for good and the server's socket
        holds what it did not read (its receive queue, as C{ss} shows).
        """
        if shutil.which("ss") is None and not os.environ.get("CI"):
            self.skipTest("ss (iproute2) is not installed")
        server = Server("--quiet", "--fault", "stall,after=1KB")
        self.addCleanup(server.stop)
        with server.connect() as s:
            s.setblocking(False)
            sent = 0
            stuck = time.monotonic()
            while time.monotonic() - stuck < 1.0:
                try:
                    sent += s.send(b"s" * 65536)
                    stuck = time.monotonic()
                except BlockingIOError:
                    time.sleep(0.05)
            # Nothing more goes for a second: the window is closed.
            self.assertLess(sent, 64 * 1024 * 1024)
            s.settimeout(0.5)
            received = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    received += chunk
            except socket.timeout:
                pass
            self.assertEqual(received, b"S" * 1000)
            queues = subprocess.run(
                ["ss", "-Htn", "state", "established", "sport", "=", f":{server.port}"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            # State is filtered out: Recv-Q, Send-Q, local, peer.
            receiveQueue = int(queues[0])
            self.assertGreater(receiveQueue, 0, queues)
            s.setblocking(False)
            with self.assertRaises(BlockingIOError):
                s.send(b"s")


class WorkersTests(TestCase):
    """
    C{--fault} with C{--workers}.
    """

    def test_workers(self) -> None:
        """
        Each worker applies the faults, and logs its own seed derived from
        the given one.
        """
        server = Server(
            "--quiet", "--workers", "2", "--fault", "close,after=5B", "--fault-seed", "3"
        )
        self.addCleanup(server.stop)
        server.waitFor(r"faults: close,after=5B; seed 3")
        for _ in range(4):
            with server.connect() as s:
                sendInThread(s, b"abcdefghij")
                self.assertEqual(receiveAll(s), b"ABCDE")


class BadFaultTests(TestCase):
    """
    A bad C{--fault} value.
    """

    def test_oneLineExit2(self) -> None:
        """
        Exit status 2 and one line naming the fault and the field.
        """
        result = run(
            script("twistd") + ["-n", "--pidfile=", "uppercase", "--fault", "latency,delay=abc"]
        )
        self.assertEqual(result.returncode, 2)
        self.assertEqual(
            result.stderr.splitlines()[0],
            "twistd uppercase: --fault 'latency,delay=abc': latency: delay must be a duration "
            "such as 20ms or 1.5s",
        )
        self.assertNotIn("Traceback", result.stderr + result.stdout)
