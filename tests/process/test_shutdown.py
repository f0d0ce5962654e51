"""
Graceful shutdown of a real server: nothing it has read is lost, whatever the
peer is doing; a second signal cuts it short; TLS ends with close_notify.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import tempfile
import threading

from twisted.trial.unittest import SynchronousTestCase

from ._process import DEADLINE, Server, receiveAll, requireTLS
from .test_endpoints import makeCertificate
from .test_robustness import poll

CLOSE_LINE = (
    r"Connection from 127\.0\.0\.1:{port} closed \((\d+) bytes received"
    r"(?:, (\d+) sent back, (\d+) discarded while closing)?\)"
)


class Sender:
    """
    Sends 4 KiB chunks (a-z, one letter per chunk) every half millisecond
    from a thread, without reading, until told to stop.
    """

    def __init__(self, s: socket.socket) -> None:
        self.socket = s
        self.sent = bytearray()
        self.errors: list[OSError] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        count = 0
        while not self._stop.is_set():
            chunk = bytes([97 + count % 26]) * 4096
            try:
                self.socket.sendall(chunk)
            except OSError as e:
                self.errors.append(e)
                return
            self.sent += chunk
            count += 1
            self._stop.wait(0.0005)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(DEADLINE)


class PeerStillSendingTests(SynchronousTestCase):
    """
    The issue's case: a client writes 4 KiB every 0.5 ms and does not read
    yet; SIGTERM arrives.
    """

    def test_everyByteReadIsDelivered(self) -> None:
        """
        Every byte the server read before the signal comes back, uppercased
        and in order, then a clean end of stream (no reset); the client
        could go on sending meanwhile; the server's own close line counts
        exactly what the client received.
        """
        server = Server("--quiet")
        self.addCleanup(server.stop)
        s = server.connect()
        self.addCleanup(s.close)
        clientPort = s.getsockname()[1]
        sender = Sender(s)
        self.addCleanup(sender.stop)
        self.assertTrue(poll(lambda: len(sender.sent) >= 256 * 1024), "never sent 256 KiB")
        server.process.send_signal(signal.SIGTERM)
        server.waitFor("Shutting down 1 connection ")
        before = len(sender.sent)
        self.assertTrue(
            poll(lambda: len(sender.sent) >= before + 128 * 1024 or bool(sender.errors))
        )
        sender.stop()
        self.assertEqual(sender.errors, [])
        try:
            received = receiveAll(s)
        except ConnectionResetError:
            self.fail("reset: replies lost")
        s.close()
        self.assertEqual(server.wait(), -signal.SIGTERM)
        self.assertGreater(len(received), 0)
        self.assertTrue(received == bytes(sender.sent[: len(received)]).upper(), "wrong bytes")
        close = re.search(CLOSE_LINE.format(port=clientPort), server.output)
        assert close is not None, server.output
        total, sentBack, discarded = (int(g or 0) for g in close.groups())
        self.assertEqual(sentBack, len(received))
        self.assertEqual(total, len(sender.sent))
        self.assertEqual(total, sentBack + discarded)


class SecondSignalTests(SynchronousTestCase):
    """
    A second SIGINT or SIGTERM during the drain cuts it short, cleanly.
    """

    def test_twoInterruptsQuickly(self) -> None:
        """
        Two SIGINTs 50 ms apart, with a connection whose peer does not read
        (so the drain would wait the whole shutdown timeout): the server
        ends at once, says so in one line, and shows no traceback.
        """
        server = Server("--quiet", "--shutdown-timeout", "60")
        self.addCleanup(server.stop)
        s = server.connect()
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sender = Sender(s)
        self.addCleanup(sender.stop)
        self.assertTrue(poll(lambda: len(sender.sent) >= 64 * 1024))
        server.process.send_signal(signal.SIGINT)
        server.waitFor("Shutting down 1 connection ")
        threading.Event().wait(0.05)
        server.process.send_signal(signal.SIGINT)
        server.waitFor("Aborting 1 connection still open on a second SIGINT")
        self.assertEqual(server.wait(DEADLINE / 2), -signal.SIGINT)
        self.assertNotIn("Traceback", server.output)
        self.assertNotIn("ReactorNotRunning", server.output)


class IgnoredInterruptTests(SynchronousTestCase):
    """
    A server started with SIGINT ignored (a background job of a
    non-interactive shell) still stops on SIGINT, and exits by it.
    """

    def test_exitsBySignal(self) -> None:
        """
        SIGINT stops it, logged once, and the exit status says SIGINT, as
        when SIGINT was at its default action.
        """

        def ignoreInterrupts() -> None:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

        server = Server("--quiet", preexec=ignoreInterrupts)
        self.addCleanup(server.stop)
        # An echo means the reactor runs, so the handlers are installed (an
        # earlier SIGINT would be ignored, as the process was told).
        with server.connect() as s:
            s.sendall(b"up\n")
            self.assertEqual(s.recv(3), b"UP\n")
        server.process.send_signal(signal.SIGINT)
        self.assertEqual(server.wait(), -signal.SIGINT)
        self.assertEqual(server.output.count("Received SIGINT, shutting down."), 1)


class TLSShutdownTests(SynchronousTestCase):
    """
    On a TLS listener the graceful close is TLS's own.
    """

    def test_closeNotifyNotTruncation(self) -> None:
        """
        A TLS client that sent data and has not read the replies yet gets
        them all on SIGTERM, then TLS's close_notify: a clean end of the TLS
        stream (C{recv} returns nothing), not a TCP half-close beneath it,
        which the client would see as a truncation attack
        (C{SSLEOFError}).
        """
        requireTLS()
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)
        key, cert, roots = makeCertificate(folder)
        server = Server(listen=f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}")
        self.addCleanup(server.stop)
        context = ssl.create_default_context(cafile=f"{roots}/ca.pem")
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE)
        s = context.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
        self.addCleanup(s.close)
        message = b"tls data\n" * 2_000_000  # more than every buffer on the way holds
        sender = threading.Thread(target=s.sendall, args=(message,), daemon=True)
        sender.start()
        self.assertTrue(poll(lambda: receivedBytes(server.output) >= 512 * 1024))
        server.process.send_signal(signal.SIGTERM)
        sender.join(DEADLINE)
        received = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ssl.SSLEOFError:
                self.fail("the TCP stream ended without close_notify")
            if not chunk:
                break
            received += chunk
        self.assertGreaterEqual(len(received), 512 * 1024)
        self.assertTrue(received == message[: len(received)].upper(), "wrong bytes")


def stopWhileWaiting(pid: int) -> None:
    """
    Stop (SIGSTOP) process C{pid} while its reactor waits in C{epoll_wait}:
    once continued, it handles what arrived meanwhile (new connections,
    signals) in one reactor turn, whatever it was doing when it started.
    """

    def read(name: str) -> str:
        with open(f"/proc/{pid}/{name}") as f:
            return f.read()

    for _ in range(100):
        if not poll(lambda: read("wchan") == "do_epoll_wait"):
            raise AssertionError(f"process {pid} never waits in epoll_wait")
        waiting = read("syscall").split()[0]
        os.kill(pid, signal.SIGSTOP)
        if not poll(lambda: read("stat").rsplit(")", 1)[1].split()[0] == "T"):
            raise AssertionError(f"process {pid} did not stop")
        if read("syscall").split()[0] == waiting:
            return
        os.kill(pid, signal.SIGCONT)
    raise AssertionError(f"process {pid} never stopped in epoll_wait")


def continueIfThere(pid: int) -> None:
    """
    Continue (SIGCONT) process C{pid} if it still exists.
    """
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


class UnreadInputTests(SynchronousTestCase):
    """
    A connection the server has accepted but not read from yet when it is
    told to stop is drained like any other, never reset.
    """

    def test_acceptedUnreadIsDrained(self) -> None:
        """
        The server stopped (SIGSTOP) in its reactor's wait while a client
        connects and sends 1 MiB; SIGTERM, then SIGCONT: the server accepts
        the connection, then stops with its input unread (the issue's
        reproduction, where tcpdump showed a FIN and, 24 microseconds
        later, a reset).  The client gets a clean end of stream
        (no reset, which closing with unread input would send); the server
        reads and discards what it was sent until the client closes, and
        its close line counts it.
        """
        server = Server("--quiet")
        self.addCleanup(server.stop)
        pid = server.process.pid
        stopWhileWaiting(pid)
        self.addCleanup(continueIfThere, pid)
        s = server.connect()
        self.addCleanup(s.close)
        port = s.getsockname()[1]
        payload = b"a" * (1024 * 1024)
        s.setblocking(False)
        sent = 0
        try:
            while sent < len(payload):
                sent += s.send(payload[sent:])
        except BlockingIOError:
            pass
        self.assertGreater(sent, 0)
        s.settimeout(DEADLINE)
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGCONT)
        server.waitFor("Shutting down 1 connection")
        try:
            received = receiveAll(s)
        except ConnectionResetError:
            self.fail(f"reset\n{server.output}")
        self.assertEqual(received, b"")
        s.close()
        close = server.waitFor(CLOSE_LINE.format(port=port))
        self.assertEqual(
            (close.group(1), close.group(2), close.group(3)), (str(sent), "0", str(sent))
        )
        self.assertEqual(server.wait(), -signal.SIGTERM)
        self.assertNotIn("Aborting", server.output)


def receivedBytes(output: str) -> int:
    """
    The bytes a logging server says it received, over all its lines.
    """
    return sum(int(size) for size in re.findall(r"Received (\d+) bytes from", output))
