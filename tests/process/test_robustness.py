"""
The real server under hostile and unlucky peers: floods, slow readers,
resets, churn, descriptor exhaustion, idle peers, limits, and shutdown.
Every wait is bounded.
"""

from __future__ import annotations

import os
import re
import resource
import select
import signal
import socket
import struct
import threading
import time
from typing import Callable

from twisted.trial.unittest import SynchronousTestCase

from ._process import DEADLINE, Server, Twistd, receiveAll, sendInThread


def poll(predicate: Callable[[], bool], timeout: float = DEADLINE) -> bool:
    """
    Check C{predicate} until it holds or C{timeout} passes: for state of
    another process, which nothing notifies us of.
    """
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            return False
        pause.wait(0.02)
    return True


def waitForPorts(server: Twistd, count: int) -> str:
    """
    The output of C{server} once it has logged C{count} listening ports.
    """
    poll(lambda: len(re.findall(r"starting on \d+", server.output)) >= count)
    return server.output


def openFDs(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def ping(server: Server, message: bytes = b"ping\n") -> bytes:
    with server.connect() as s:
        s.sendall(message)
        s.shutdown(socket.SHUT_WR)
        return receiveAll(s)


def reset(s: socket.socket) -> None:
    """
    Close C{s} with an RST instead of a FIN (SO_LINGER with a zero timeout).
    """
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


class FloodTests(SynchronousTestCase):
    """
    A peer that sends but never reads, and one that reads slowly.
    """

    def setUp(self) -> None:
        self.server = Server("--quiet")
        self.addCleanup(self.server.stop)

    def test_neverReadingPeerBoundedAndOthersServed(self) -> None:
        """
        While a peer pushes for two seconds without reading, the server
        grows by well under 64 MiB and keeps answering other clients.
        """
        before = self.server.rssKiB()
        flooder = self.server.connect()
        self.addCleanup(flooder.close)
        flooder.setblocking(False)
        chunk = b"a" * 65536
        pushed = 0
        answered = 0
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            _, writable, _ = select.select([], [flooder], [], 0.05)
            if writable:
                try:
                    pushed += flooder.send(chunk)
                except BlockingIOError:
                    pass
            else:
                self.assertEqual(ping(self.server), b"PING\n")
                answered += 1
        growth = self.server.rssKiB() - before
        self.assertLess(growth, 64 * 1024, f"grew {growth} KiB after {pushed} bytes")
        self.assertGreater(answered, 0, "the flooder never filled its buffers")
        self.assertEqual(ping(self.server), b"PING\n")

    def test_slowReaderGetsEveryByte(self) -> None:
        """
        A reader with a tiny receive buffer that reads a kilobyte at a time
        gets every byte: reading pauses, nothing is dropped.
        """
        data = os.urandom(4 * 1024 * 1024)
        s = socket.socket()
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(DEADLINE)
        s.connect(("127.0.0.1", self.server.port))
        sender = sendInThread(s, data)
        received = bytearray()
        while True:
            chunk = s.recv(1024)
            if not chunk:
                break
            received += chunk
        sender.join(DEADLINE)
        self.assertEqual(len(received), len(data))
        self.assertTrue(bytes(received) == data.upper(), "reply differs")


class ChurnTests(SynchronousTestCase):
    """
    Resets and connect/leave churn leak nothing and break nothing.
    """

    def setUp(self) -> None:
        self.server = Server("--quiet")
        self.addCleanup(self.server.stop)
        self.pid = self.server.process.pid
        self.assertEqual(ping(self.server), b"PING\n")
        self.baselineFDs = openFDs(self.pid)

    def assertClean(self) -> None:
        # At most as many as before: a leak shows as more.  (The baseline can
        # include a descriptor the server was still closing when it was taken.)
        self.assertTrue(
            poll(lambda: openFDs(self.pid) <= self.baselineFDs),
            f"{openFDs(self.pid)} descriptors open, {self.baselineFDs} before",
        )
        self.assertEqual(ping(self.server), b"PING\n")
        self.assertNotIn("Traceback", self.server.output)
        self.assertNotIn("Unhandled", self.server.output)

    def test_resetsWhileOwed(self) -> None:
        """
        Two hundred clients that send 256 KiB without reading and then reset
        the connection leave no descriptor behind and no error in the log.
        """
        payload = b"z" * (256 * 1024)
        for _ in range(4):
            sockets = [self.server.connect() for _ in range(50)]
            for s in sockets:
                s.setblocking(False)
                try:
                    s.send(payload)
                except BlockingIOError:
                    pass
            for s in sockets:
                reset(s)
        self.assertClean()
        self.server.waitFor("lost: Connection to the other side was lost")

    def test_thousandsConnectAndLeave(self) -> None:
        """
        Three thousand clients that connect and leave at once, half of them
        with a reset, leave no descriptor behind and memory near where it was.
        """

        def churn(count: int) -> None:
            for i in range(count):
                s = socket.create_connection(("127.0.0.1", self.server.port), timeout=DEADLINE)
                if i % 2:
                    reset(s)
                else:
                    s.close()

        # A first round of the same size warms the process up (PyPy's JIT
        # compiles the code paths and its heap grows once, by some 17 MiB
        # here, then stays flat round after round); the second must not grow
        # it more.
        churn(3000)
        self.assertClean()
        rssBefore = self.server.rssKiB()
        churn(3000)
        self.assertClean()
        growth = self.server.rssKiB() - rssBefore
        self.assertLess(growth, 16 * 1024, f"grew {growth} KiB")


class LimitTests(SynchronousTestCase):
    """
    Descriptor exhaustion and connection limits, on a real process.
    """

    def test_descriptorLimit(self) -> None:
        """
        Under C{ulimit -n 48}, 80 clients arriving at once: the server
        survives, logs refusals once per burst (not once per client), and
        serves again as soon as descriptors are free.
        """
        server = Server(
            "--quiet",
            preexec=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48)),
        )
        self.addCleanup(server.stop)
        sockets = [server.connect() for _ in range(80)]
        served = 0
        for s in sockets:
            try:
                s.sendall(b"hi\n")
                served += s.recv(3) == b"HI\n"
            except OSError:
                pass
        for s in sockets:
            s.close()
        self.assertGreater(served, 0)
        self.assertLess(served, 80)
        self.assertTrue(poll(lambda: _served(server)), "not serving again")
        refusalLines = server.output.count("Refused")
        self.assertGreaterEqual(refusalLines, 1)
        self.assertLessEqual(refusalLines, 5, server.output)
        self.assertNotIn("EMFILE", server.output)
        self.assertNotIn("Traceback", server.output)

    def test_silentProxyConnectionsStarveNothing(self) -> None:
        """
        Under C{ulimit -n 256}, 400 connections to a C{haproxy:} listener
        that never send their header take only their own share: every echo
        client on the plain listener is served, nothing fails with
        C{EMFILE}, and refusals cost a few lines.
        """
        server = Twistd(
            "uppercase",
            "--quiet",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--listen",
            "haproxy:tcp:0:interface=127.0.0.1",
            preexec=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)),
        )
        self.addCleanup(server.stop)
        plain, proxied = (int(p) for p in re.findall(r"starting on (\d+)", waitForPorts(server, 2)))
        silent = [socket.create_connection(("127.0.0.1", proxied)) for _ in range(400)]
        for s in silent:
            self.addCleanup(s.close)
        served = 0
        for _ in range(40):
            try:
                with socket.create_connection(("127.0.0.1", plain), timeout=5) as s:
                    s.sendall(b"hi\n")
                    served += s.recv(3) == b"HI\n"
            except OSError:
                pass
        self.assertEqual(served, 40)
        server.waitFor("connections already waiting for their PROXY header")
        self.assertNotIn("EMFILE", server.output)
        self.assertNotIn("Traceback", server.output)
        self.assertLessEqual(server.output.count("Refused"), 6, server.output)

    def test_maxConnections(self) -> None:
        """
        Over C{--max-connections}, a new connection is closed at once; when
        one closes, capacity comes back.
        """
        server = Server("--quiet", "--max-connections", "2")
        self.addCleanup(server.stop)
        first, second = server.connect(), server.connect()
        self.addCleanup(second.close)
        first.sendall(b"a")
        second.sendall(b"b")
        self.assertEqual((first.recv(1), second.recv(1)), (b"A", b"B"))
        with server.connect() as third:
            try:
                self.assertEqual(third.recv(1), b"")
            except ConnectionResetError:
                pass
        first.close()
        self.assertTrue(poll(lambda: _served(server)))
        server.waitFor("Refused connection from 127.0.0.1:\\d+: 2 connections already open")

    def test_idleTimeout(self) -> None:
        """
        A silent connection is closed after the idle timeout, and the close
        is logged.
        """
        server = Server("--quiet", "--idle-timeout", "0.4")
        self.addCleanup(server.stop)
        with server.connect() as s:
            self.assertEqual(s.recv(1), b"")
        server.waitFor("idle for 0.4 seconds")

    def test_idleTimeoutSparesSteadyReader(self) -> None:
        """
        A peer that sends 3 MB without ending its side and then reads the
        replies slowly but steadily for several idle timeouts -- the
        server's own buffer long drained into the kernel's -- is not closed
        as idle, and gets every byte.
        """
        server = Server("--quiet", "--idle-timeout", "2", "--shutdown-timeout", "1")
        self.addCleanup(server.stop)
        data = os.urandom(3_000_000)
        s = socket.socket()
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(DEADLINE)
        s.connect(("127.0.0.1", server.port))
        sender = sendInThread(s, data, shutdown=False)
        received = bytearray()
        start = time.monotonic()
        pace = threading.Event()
        while len(received) < len(data):
            chunk = s.recv(4096)
            if not chunk:
                break
            received += chunk
            # About 400 kB/s: 3 MB take 7.5 seconds, over three timeouts.
            ahead = start + len(received) / 400_000 - time.monotonic()
            if ahead > 0:
                pace.wait(ahead)
        sender.join(DEADLINE)
        self.assertEqual(len(received), len(data), server.output)
        self.assertTrue(bytes(received) == data.upper(), "reply differs")
        self.assertNotIn("idle for", server.output)

    def test_halfCloseWithEveryOption(self) -> None:
        """
        Half-close still delivers every byte with every option on.
        """
        server = Server(
            "--quiet",
            "--idle-timeout",
            "5",
            "--max-connections",
            "10",
            "--max-per-ip",
            "5",
            "--shutdown-timeout",
            "3",
        )
        self.addCleanup(server.stop)
        data = os.urandom(5 * 1024 * 1024)
        with server.connect() as s:
            sender = sendInThread(s, data)
            received = receiveAll(s)
            sender.join(DEADLINE)
        self.assertTrue(received == data.upper(), "reply differs")


def fillBuffers(s: socket.socket) -> bytes:
    """
    Send on C{s} without reading until nothing more goes for half a second:
    the server has then stopped reading (its write buffer is full), and owes
    us replies.

    @return: what was sent.
    """
    s.setblocking(False)
    sent = bytearray()
    chunk = os.urandom(65536)
    while select.select([], [s], [], 0.5)[1]:
        try:
            sent += chunk[: s.send(chunk)]
        except BlockingIOError:
            pass
    return bytes(sent)


def _served(server: Server) -> bool:
    try:
        return ping(server, b"again\n") == b"AGAIN\n"
    except OSError:
        return False


class GracefulShutdownTests(SynchronousTestCase):
    """
    SIGTERM delivers what was read, ends the stream with a FIN, and aborts
    what is left at the shutdown timeout.
    """

    def test_owedDataDeliveredThenCleanEnd(self) -> None:
        """
        A peer that sent 8 MiB without reading, then keeps reading after
        SIGTERM, gets the uppercase of a prefix of what it sent followed by
        a clean end of stream, never a reset; the server exits.
        """
        server = Server("--quiet", "--shutdown-timeout", "10")
        s = server.connect()
        self.addCleanup(s.close)
        sent = fillBuffers(s)
        server.process.send_signal(signal.SIGTERM)
        server.waitFor("Shutting down 1 connection ")
        s.setblocking(True)
        s.settimeout(DEADLINE)
        received = receiveAll(s)
        self.assertGreater(len(received), 65536)
        self.assertTrue(received == sent[: len(received)].upper(), "reply differs")
        s.close()
        # The server ends by itself once the peer has closed: a second
        # SIGTERM (stop()) racing that close would abort, rightly.
        self.addCleanup(server.stop)
        self.assertIn(server.wait(), (0, -signal.SIGTERM))
        self.assertNotIn("Aborting", server.output)

    def test_deadlineAborts(self) -> None:
        """
        A peer that neither reads nor closes is aborted at the shutdown
        timeout, and the server exits.
        """
        server = Server("--quiet", "--shutdown-timeout", "0.5")
        s = server.connect()
        self.addCleanup(s.close)
        fillBuffers(s)
        started = time.monotonic()
        self.assertIn(server.stop(), (0, -signal.SIGTERM))
        self.assertLess(time.monotonic() - started, DEADLINE)
        self.assertIn("Aborting 1 connection still open", server.output)
