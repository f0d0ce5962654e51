"""
The example systemd units in docs/systemd/, run as written under systemd's
own socket activator (C{systemd-socket-activate}), on a free port.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
from typing import Sequence

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from ._process import DEADLINE, Twistd, closedPort, receiveAll, script

UNITS = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "systemd")
ACTIVATE = shutil.which("systemd-socket-activate")


def unitSetting(unit: str, key: str) -> str:
    """
    The value of C{key=} in a unit file of docs/systemd.
    """
    with open(os.path.join(UNITS, unit)) as f:
        for line in f:
            if line.startswith(key + "="):
                return line.split("=", 1)[1].strip()
    raise AssertionError(f"{unit} has no {key}=")


class Activated(Twistd):
    """
    The service's C{ExecStart}, with the installed C{twistd}, started by
    C{systemd-socket-activate} on the first connection to C{port}, as
    systemd would (the socket named as systemd names it by default).
    """

    def __init__(
        self,
        port: int,
        listen: str | None = None,
        extra: Sequence[str] = (),
        fdname: str | None = "uppercase.socket",
    ) -> None:
        self.port = port
        self.listen = listen
        self.extra = list(extra)
        self.fdname = fdname
        super().__init__()

    def command(self, args: Sequence[str]) -> list[str]:
        execStart = shlex.split(unitSetting("uppercase.service", "ExecStart"))
        assert execStart[0].endswith("/twistd")
        if self.listen is not None:
            execStart[execStart.index("--listen") + 1] = self.listen
        return [
            str(ACTIVATE),
            f"--listen={self.port}",
            *([f"--fdname={self.fdname}"] if self.fdname is not None else []),
            *script("twistd"),
            *execStart[1:],
            *self.extra,
        ]


class UnitTests(SynchronousTestCase):
    """
    The socket unit's dual-stack socket, read by the service unit's command.
    """

    def setUp(self) -> None:
        if ACTIVATE is None:
            if os.environ.get("CI"):
                raise AssertionError("systemd-socket-activate is missing (.ci/run installs it)")
            raise SkipTest("systemd-socket-activate is not installed (apt-get install systemd)")

    def test_addressesAsClientsHaveThem(self) -> None:
        """
        Activated on the socket unit's C{ListenStream} (a dual-stack IPv6
        socket, as C{BindIPv6Only=both} makes it), the server serves IPv4
        and IPv6 clients and logs each with its own address and port, an
        IPv4 client as C{127.0.0.1}.
        """
        self.assertEqual(unitSetting("uppercase.socket", "ListenStream"), "9527")
        self.assertEqual(unitSetting("uppercase.socket", "BindIPv6Only"), "both")
        server = Activated(closedPort())
        self.addCleanup(server.stop)
        server.waitFor("Listening on")
        for family, host in [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]:
            with socket.socket(family) as s:
                s.settimeout(DEADLINE)
                s.connect((host, server.port))
                port = s.getsockname()[1]
                s.sendall(b"activated\n")
                s.shutdown(socket.SHUT_WR)
                self.assertEqual(receiveAll(s), b"ACTIVATED\n")
            server.waitFor(f"Connection from {host} port {port}$")
        self.assertIn("serving on systemd:domain=INET6:index=0", server.output)
        self.assertNotIn("Traceback", server.output)

    def test_wrongFamilyIsOneLine(self) -> None:
        """
        The same socket read with C{domain=INET} (the old unit's mistake,
        which garbled every address) is refused at start, in one line that
        says which domain to use.
        """
        server = Activated(closedPort(), listen="systemd:domain=INET:index=0")
        self.addCleanup(server.stop)
        server.waitFor("Listening on")
        with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE):
            pass
        self.assertEqual(server.wait(), 1)
        self.assertIn(
            "twistd uppercase: cannot listen on systemd:domain=INET:index=0: systemd socket 0 "
            "(descriptor 3) is INET6, but the endpoint says domain=INET: use domain=INET6\n",
            server.output,
        )
        self.assertNotIn("Traceback", server.output)

    def test_workersShareTheSocket(self) -> None:
        """
        With C{--workers 2}, both workers serve systemd's socket (the
        supervisor passes it to them) and every client gets its reply.
        """
        server = Activated(closedPort(), extra=["--workers", "2"])
        self.addCleanup(server.stop)
        server.waitFor("Listening on")
        with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE) as s:
            s.sendall(b"first\n")
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(receiveAll(s), b"FIRST\n")
        for n in (1, 2):
            server.waitFor(rf"Worker {n} \(pid \d+\) is serving")
        for _ in range(10):
            with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE) as s:
                s.sendall(b"worker\n")
                s.shutdown(socket.SHUT_WR)
                self.assertEqual(receiveAll(s), b"WORKER\n")
        self.assertNotIn("not a valid endpoint", server.output)

    def test_unnamedSocketIsOneLine(self) -> None:
        """
        A socket passed without a name (systemd-socket-activate without
        C{--fdname}), which Twisted ignores, is refused at start in one line
        that says what is wrong, not "list index out of range".
        """
        server = Activated(closedPort(), fdname=None)
        self.addCleanup(server.stop)
        server.waitFor("Listening on")
        with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE):
            pass
        self.assertNotEqual(server.wait(), 0)
        self.assertIn(
            "twistd uppercase: --listen 'systemd:domain=INET6:index=0' is not a valid endpoint: "
            "systemd passed this process no socket with index 0 (Twisted takes systemd's "
            "sockets only when systemd names them",
            server.output,
        )
        self.assertNotIn("out of range", server.output)
        self.assertNotIn("Traceback", server.output)
