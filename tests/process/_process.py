"""Running the installed twistd and uppercase-client as a user would."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from typing import Callable, Sequence

from twisted.trial.unittest import SkipTest

DEADLINE = 20.0
"""Seconds any single wait on a real process or socket may take."""


def script(name: str) -> list[str]:
    """
    The command line of a console script installed beside this Python.
    """
    path = os.path.join(os.path.dirname(sys.executable), name)
    if not os.path.exists(path):
        raise RuntimeError(f"{name} is not installed beside {sys.executable}")
    return [path]


def requireTLS() -> None:
    """
    Skip the calling test if pyOpenSSL is missing and C{UPPERCASE_TLS_OPTIONAL}
    is set (CI's PyPy run, where no cryptography wheel fits); fail it if
    pyOpenSSL is missing otherwise.
    """
    try:
        import OpenSSL  # noqa: F401
    except ImportError:
        if os.environ.get("UPPERCASE_TLS_OPTIONAL"):
            raise SkipTest("pyOpenSSL is not installed") from None
        raise


def closedPort() -> int:
    """
    A loopback port where nothing listens (bound, then released).
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(
    argv: Sequence[str], timeout: float = DEADLINE, cwd: str | None = None
) -> subprocess.CompletedProcess[str]:
    """
    Run a command to completion in C{cwd} (a fresh folder by default),
    capturing its output.
    """
    with tempfile.TemporaryDirectory() as fresh:
        return subprocess.run(
            list(argv),
            cwd=cwd or fresh,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


class Twistd:
    """
    C{twistd -n --pidfile= ARGS} in the background, its output collected by a
    thread (so that a chatty log never blocks it on a full pipe).
    """

    def command(self, args: Sequence[str]) -> list[str]:
        """
        The command line that runs C{args}.
        """
        return script("twistd") + ["-n", "--pidfile=", *args]

    def __init__(self, *args: str, preexec: Callable[[], None] | None = None) -> None:
        self._cwd = tempfile.TemporaryDirectory()
        self.process = subprocess.Popen(
            self.command(args),
            cwd=self._cwd.name,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            preexec_fn=preexec,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def waitFor(self, pattern: str, timeout: float = DEADLINE) -> re.Match[str]:
        """
        Wait until a line of output matches C{pattern}.

        @raise AssertionError: if the process ends or C{timeout} passes first.
        """
        regex = re.compile(pattern)
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    match = regex.search(line)
                    if match:
                        return match
                seen = len(self.lines)
                if not self._reader.is_alive():
                    raise AssertionError(
                        f"twistd ended without printing {pattern!r}:\n{self.output}"
                    )
                if not self._changed.wait(timeout):
                    raise AssertionError(
                        f"no {pattern!r} within {timeout}s:\n{''.join(self.lines)}"
                    )

    def wait(self, timeout: float = DEADLINE) -> int:
        """
        Wait for the process to end by itself; kill it if it does not.
        """
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"twistd did not end within {timeout}s") from None
        finally:
            self._reader.join(DEADLINE)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = DEADLINE) -> int:
        """
        Send C{sig} and wait for the process to end; kill it if it does not.
        """
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.wait(timeout)
        finally:
            self._cwd.cleanup()

    def rssKiB(self) -> int:
        """
        The process's resident memory, from /proc.
        """
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")


class Server(Twistd):
    """
    C{twistd -n uppercase} on a free loopback port.
    """

    def __init__(
        self,
        *args: str,
        preexec: Callable[[], None] | None = None,
        listen: str = "tcp:0:interface=127.0.0.1",
    ) -> None:
        super().__init__(
            "uppercase",
            "--listen",
            listen,
            *args,
            preexec=preexec,
        )
        self.port = int(self.waitFor(r"UppercaseFactory.*starting on (\d+)").group(1))

    def connect(self) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE)
        return s


def receiveAll(s: socket.socket) -> bytes:
    """
    Read until the peer ends the stream.
    """
    chunks: list[bytes] = []
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def sendInThread(s: socket.socket, data: bytes, shutdown: bool = True) -> threading.Thread:
    """
    Send C{data} from another thread (so that this one can read the replies
    at the same time), then optionally shut down the sending side.
    """

    def send() -> None:
        try:
            s.sendall(data)
            if shutdown:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            # The test closed the socket meanwhile (it had what it wanted, or
            # the server reset it): there is nothing left to send.
            pass

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


class Twist(Twistd):
    """
    C{twist ARGS} (Twisted's foreground runner) in the background.
    """

    def command(self, args: Sequence[str]) -> list[str]:
        return script("twist") + list(args)


def listenBacklog(port: int) -> int:
    """
    The accept backlog of the TCP socket listening on C{port}, as the kernel
    reports it (C{ss}: a listening socket's Send-Q).
    """
    out = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    [line] = out.strip().splitlines()
    return int(line.split()[2])
