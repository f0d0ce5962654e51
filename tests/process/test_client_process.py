"""
The installed C{uppercase-client} and C{twistd -n uppercase-client} as real
processes, against peers written here (a wrong answer, silence, a full
accept queue), interrupted by real signals.  Every wait is bounded (see
L{_process.DEADLINE}); nothing sleeps.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time
from typing import Callable, Optional

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from ._process import DEADLINE, Twistd, closedPort, run, script

Respond = Callable[[bytes], Optional[bytes]]
"""Given one whole message (up to and including its newline), the bytes to
answer with, or L{None} to stay silent."""


def upper(line: bytes) -> bytes:
    """
    The right answer.
    """
    return line.upper()


def echo(line: bytes) -> bytes:
    """
    A wrong answer: the message as it came.
    """
    return line


def silent(line: bytes) -> None:
    """
    No answer at all.
    """
    return None


class Peer:
    """
    A TCP server on loopback, in a thread, that answers each newline-ended
    message with C{respond(message)} and keeps every connection open until
    the client closes it.

    @ivar messages: how many whole messages arrived, over all connections.
    """

    def __init__(self, respond: Respond, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.bind((host, 0))
        self._listener.listen(8)
        self.port: int = self._listener.getsockname()[1]
        self._respond = respond
        self.messages = 0
        self._changed = threading.Condition()
        self._wake, self._waker = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        buffers: dict[socket.socket, bytes] = {}
        try:
            while True:
                readable, _, _ = select.select(
                    [self._listener, self._wake, *buffers], [], [], DEADLINE
                )
                if self._wake in readable or not readable:
                    return
                for s in readable:
                    if s is self._listener:
                        connection, _ = s.accept()
                        buffers[connection] = b""
                        continue
                    try:
                        self._receive(s, buffers)
                    except OSError:  # reset: the client aborted
                        del buffers[s]
                        s.close()
        finally:
            for s in buffers:
                s.close()
            with self._changed:
                self._changed.notify_all()

    def _receive(self, s: socket.socket, buffers: dict[socket.socket, bytes]) -> None:
        """
        Read from C{s}; answer each whole message; close when the client
        does.
        """
        data = s.recv(65536)
        if not data:
            del buffers[s]
            s.close()
            return
        buffer = buffers[s] + data
        while b"\n" in buffer:
            message, buffer = buffer.split(b"\n", 1)
            answer = self._respond(message + b"\n")
            if answer is not None:
                s.sendall(answer)
            with self._changed:
                self.messages += 1
                self._changed.notify_all()
        buffers[s] = buffer

    def waitForMessages(self, count: int = 1, timeout: float = DEADLINE) -> None:
        """
        Wait until C{count} whole messages have arrived (and been answered).
        """
        with self._changed:
            if not self._changed.wait_for(
                lambda: self.messages >= count or not self._thread.is_alive(), timeout
            ):
                raise AssertionError(f"{self.messages} of {count} messages within {timeout}s")
            if self.messages < count:
                raise AssertionError("the peer stopped before the messages arrived")

    def close(self) -> None:
        self._waker.send(b"x")
        self._thread.join(DEADLINE)
        for s in (self._listener, self._wake, self._waker):
            s.close()


class FullAcceptQueue:
    """
    A listening socket on 127.0.0.1 that never accepts, with its accept
    queue already full: the kernel drops further SYNs, so a connection
    attempt neither succeeds nor fails until it gives up by itself.

    How many connections fill the queue depends on the interpreter (PyPy's
    C{listen(0)} admits two, CPython's one): connections are opened until
    one stays pending.
    """

    PENDING = 0.5
    """Seconds after which a loopback handshake counts as stalled (a
    dropped SYN is sent again only after a second)."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self.port: int = self._listener.getsockname()[1]
        self._fillers: list[socket.socket] = []
        for _ in range(16):
            filler = socket.socket()
            self._fillers.append(filler)
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", self.port))
            _, writable, _ = select.select([], [filler], [], self.PENDING)
            if not writable:
                return
        raise AssertionError("the accept queue never filled")

    def close(self) -> None:
        for filler in self._fillers:
            filler.close()
        self._listener.close()


class ClientProcess:
    """
    C{uppercase-client ARGS} in the background, its standard output read
    line by line as it comes.
    """

    def __init__(self, *args: str) -> None:
        self._cwd = tempfile.TemporaryDirectory()
        self.process = subprocess.Popen(
            script("uppercase-client") + list(args),
            cwd=self._cwd.name,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._out = b""

    def stopIfRunning(self) -> None:
        """
        Kill the process if it is still running (a test's cleanup).
        """
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def readLine(self, timeout: float = DEADLINE) -> str:
        """
        The next line of standard output.
        """
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._out:
            left = deadline - time.monotonic()
            readable, _, _ = select.select([fd], [], [], max(left, 0))
            if not readable:
                raise AssertionError(f"no line within {timeout}s: {self._out!r}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"the client ended before a whole line: {self._out!r}")
            self._out += chunk
        line, self._out = self._out.split(b"\n", 1)
        return line.decode()

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def finish(self, timeout: float = DEADLINE) -> tuple[int, str, str]:
        """
        Wait for the client to end: its exit status, the rest of its
        standard output, and its standard error.
        """
        try:
            out, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            raise AssertionError(f"uppercase-client did not end within {timeout}s") from None
        finally:
            self._cwd.cleanup()
        return self.process.returncode, (self._out + out).decode(), err.decode()


def deliverSigintToChildren(case: SynchronousTestCase) -> None:
    """
    Have the processes the test starts begin with SIGINT's default action,
    even if this process was started with SIGINT ignored (as a shell starts
    a background job): an ignored signal stays ignored across C{exec}, and
    our client, like Twisted, leaves an ignored SIGINT ignored.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    case.addCleanup(signal.signal, signal.SIGINT, previous)


class InterruptTests(SynchronousTestCase):
    """
    C{uppercase-client} stopped by SIGINT or SIGTERM prints its summary and
    exits 128 + the signal's number: 0 only ever means every reply verified.
    """

    def setUp(self) -> None:
        deliverSigintToChildren(self)

    def client(self, respond: Respond, *args: str) -> tuple[Peer, ClientProcess]:
        peer = Peer(respond)
        self.addCleanup(peer.close)
        client = ClientProcess("-c", f"tcp:127.0.0.1:{peer.port}", *args)
        self.addCleanup(client.stopIfRunning)
        return peer, client

    def test_sigintWhileWaitingForAReply(self) -> None:
        """
        SIGINT while a reply is awaited: status 130, the summary shows one
        message sent and nothing received, and standard error says it was
        interrupted, in one line.
        """
        peer, client = self.client(silent, "--count", "1", "--timeout", "60")
        peer.waitForMessages(1)
        client.signal(signal.SIGINT)
        status, out, err = client.finish()
        self.assertEqual(status, 130, err)
        self.assertEqual(out.splitlines()[-1], "1 sent, 0 received, 0 verified")
        self.assertEqual(err, "uppercase-client: interrupted by SIGINT\n")

    def test_sigtermBetweenReplies(self) -> None:
        """
        SIGTERM while waiting out the interval after a verified reply:
        status 143, and the summary counts the one verified reply with its
        round-trip time.
        """
        peer, client = self.client(upper, "--count", "5", "--interval", "60")
        self.assertEqual(client.readLine(), "HELLO")
        client.signal(signal.SIGTERM)
        status, out, err = client.finish()
        self.assertEqual(status, 143, err)
        self.assertRegex(
            out.splitlines()[-1],
            r"^1 sent, 1 received, 1 verified, rtt min/avg/max/mdev = [\d.]+/[\d.]+/[\d.]+/[\d.]+ ms$",
        )
        self.assertEqual(err, "uppercase-client: interrupted by SIGTERM\n")

    def test_secondSigintWhileStopping(self) -> None:
        """
        Two SIGINTs in a row: still status 130 and the one line on standard
        error; the second signal causes no traceback or logged error.
        """
        peer, client = self.client(silent, "--count", "0")
        peer.waitForMessages(1)
        client.signal(signal.SIGINT)
        client.signal(signal.SIGINT)
        status, out, err = client.finish()
        self.assertEqual(status, 130, err)
        self.assertEqual(err, "uppercase-client: interrupted by SIGINT\n")
        self.assertEqual(out.splitlines()[-1], "1 sent, 0 received, 0 verified")

    def test_jsonSummarySaysInterrupted(self) -> None:
        """
        With C{--json}, an interrupted run's summary object says C{"ok":
        false} and why.
        """
        import json

        peer, client = self.client(silent, "--json")
        peer.waitForMessages(1)
        client.signal(signal.SIGINT)
        status, out, err = client.finish()
        self.assertEqual(status, 130, err)
        summary = json.loads(out.splitlines()[-1])
        self.assertEqual(
            (summary["type"], summary["ok"], summary["error"]),
            ("summary", False, "interrupted by SIGINT"),
        )


class FailureLineTests(SynchronousTestCase):
    """
    Failures are one bounded line and status 1 (2 for a usage error),
    never a traceback.
    """

    def test_longWrongReplyIsOneShortLine(self) -> None:
        """
        A 64 KiB reply that differs in its last letter is reported in one
        line of a few hundred characters at most, giving the offset of the
        difference and the byte counts; status 1.
        """
        peer = Peer(lambda line: line.upper()[:-2] + line[-2:])
        self.addCleanup(peer.close)
        result = run(
            script("uppercase-client")
            + ["-c", f"tcp:127.0.0.1:{peer.port}", "-n", "1", "-m", "a" * 65535]
        )
        self.assertEqual(result.returncode, 1)
        [line] = result.stderr.splitlines()
        self.assertLess(len(line), 400, line[:1000])
        self.assertIn("byte 65534", line)
        self.assertIn("65,536 bytes expected, 65,536 received", line)
        self.assertEqual(result.stdout.splitlines()[-1], "1 sent, 1 received, 0 verified")

    def test_negativeEndpointTimeout(self) -> None:
        """
        C{timeout=-1} in the endpoint string is a usage error, in one line
        (and the usual hint), status 2, with no "Unhandled error".
        """
        port = closedPort()
        result = run(script("uppercase-client") + ["-c", f"tcp:127.0.0.1:{port}:timeout=-1"])
        self.assertEqual(result.returncode, 2)
        self.assertEqual(
            result.stderr.splitlines(),
            [
                f"uppercase-client: --connect 'tcp:127.0.0.1:{port}:timeout=-1' is not a "
                "valid endpoint: timeout must be a whole number of seconds, 0 or more, not '-1'",
                "Try 'uppercase-client --help' for help.",
            ],
        )

    def test_connectTimeout(self) -> None:
        """
        C{--timeout 1} also bounds connecting: against a full accept queue
        the client gives up after about a second (not the TCP endpoint's
        own 30), says it timed out and after how long, and exits 1.
        """
        queue = FullAcceptQueue()
        self.addCleanup(queue.close)
        connect = f"tcp:127.0.0.1:{queue.port}"
        started = time.monotonic()
        result = run(script("uppercase-client") + ["-c", connect, "-t", "1"])
        elapsed = time.monotonic() - started
        self.assertEqual(
            (result.returncode, result.stderr),
            (1, f"uppercase-client: cannot connect to {connect}: timed out after 1s\n"),
        )
        self.assertLess(elapsed, 10)


class IPv6Tests(SynchronousTestCase):
    """
    The IPv6 forms people type work, and the one Twisted cannot read says
    how to write it.
    """

    def setUp(self) -> None:
        try:
            self.peer = Peer(upper, host="::1")
        except OSError as e:
            raise SkipTest(f"no IPv6 loopback: {e}") from None
        self.addCleanup(self.peer.close)

    def test_bracketedForms(self) -> None:
        """
        C{tcp:[::1]:PORT} and C{tcp:host=[::1]:port=PORT} both connect over
        IPv6 and verify their reply.
        """
        for connect in (f"tcp:[::1]:{self.peer.port}", f"tcp:host=[::1]:port={self.peer.port}"):
            result = run(script("uppercase-client") + ["-c", connect, "-n", "1"])
            self.assertEqual((connect, result.returncode, result.stderr), (connect, 0, ""))
            self.assertEqual(result.stdout.splitlines()[0], "HELLO")

    def test_unescapedIsAUsageError(self) -> None:
        """
        C{tcp:host=::1:port=PORT} is a usage error (status 2) that shows the
        forms that work.
        """
        connect = f"tcp:host=::1:port={self.peer.port}"
        result = run(script("uppercase-client") + ["-c", connect])
        self.assertEqual(result.returncode, 2)
        first = result.stderr.splitlines()[0]
        self.assertIn("tcp:[::1]:9527", first)
        self.assertIn(r"tcp:host=\:\:1:port=9527", first)


class TwistdClientTests(SynchronousTestCase):
    """
    C{twistd -n uppercase-client} ends with an honest status.
    """

    def test_wrongReplyExits1WithoutRetry(self) -> None:
        """
        A wrong reply stops twistd with status 1; after "Stopping" nothing
        schedules another connection attempt, and nothing is a traceback.
        """
        peer = Peer(echo)
        self.addCleanup(peer.close)
        result = run(
            script("twistd")
            + ["-n", "--pidfile=", "uppercase-client", "-c", f"tcp:127.0.0.1:{peer.port}"]
        )
        self.assertEqual(result.returncode, 1, result.stdout)
        before, stopping, after = result.stdout.partition("Stopping: reply 1 does not match")
        self.assertTrue(stopping, result.stdout)
        self.assertNotIn("Scheduling retry", after)
        self.assertNotIn("Traceback", result.stdout + result.stderr)

    def test_sigintLogsStatistics(self) -> None:
        """
        SIGINT during an endless run logs how many replies were verified
        and their round-trip statistics before twistd ends.
        """
        deliverSigintToChildren(self)
        peer = Peer(upper)
        self.addCleanup(peer.close)
        client = Twistd(
            "uppercase-client", "-c", f"tcp:127.0.0.1:{peer.port}", "-n", "0", "-i", "0.01"
        )
        self.addCleanup(client.stop)
        client.waitFor(r"Reply 2:")
        client.stop(signal.SIGINT)
        self.assertRegex(
            client.output,
            r"Stopped: \d+ replies verified, rtt min/avg/max/mdev = "
            r"[\d.]+/[\d.]+/[\d.]+/[\d.]+ ms",
        )
        self.assertNotIn("Traceback", client.output)

    def test_negativeEndpointTimeout(self) -> None:
        """
        C{timeout=-1} in the endpoint string is a usage error under twistd
        too: status 2, no "Unhandled error".
        """
        connect = f"tcp:127.0.0.1:{closedPort()}:timeout=-1"
        result = run(script("twistd") + ["-n", "--pidfile=", "uppercase-client", "-c", connect])
        self.assertEqual(result.returncode, 2)
        self.assertIn("timeout must be a whole number of seconds", result.stderr)
        self.assertNotIn("Unhandled", result.stdout + result.stderr)

    def test_connectTimeoutLogged(self) -> None:
        """
        Under twistd, C{--timeout 1} bounds each connection attempt: the
        failure is logged as a time-out after 1s, and retried.
        """
        queue = FullAcceptQueue()
        self.addCleanup(queue.close)
        client = Twistd("uppercase-client", "-c", f"tcp:127.0.0.1:{queue.port}", "-t", "1")
        self.addCleanup(client.stop)
        client.waitFor(r"Cannot connect to tcp:127\.0\.0\.1:\d+: timed out after 1s", timeout=10)
        client.waitFor(r"Scheduling retry 1 ", timeout=10)
        self.assertNotIn("Traceback", client.output)
