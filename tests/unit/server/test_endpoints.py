"""Endpoint strings: backlog defaults, systemd sockets."""

from __future__ import annotations

import os
import socket

from twisted.trial.unittest import SynchronousTestCase

from uppercase.net.endpoints import fields as splitFields
from uppercase.server._endpoints import systemdSocketProblem, withDefaultBacklog


class BacklogTests(SynchronousTestCase):
    """
    Every TCP, TLS and UNIX listener gets a backlog of 511 unless its
    string sets one.
    """

    def test_added(self) -> None:
        """
        The default is added to TCP, TCP6, TLS and UNIX endpoints, behind
        C{haproxy:} too.
        """
        for given, expected in [
            ("tcp:9527", "tcp:9527:backlog=511"),
            ("tcp6:port=1:interface=\\:\\:1", "tcp6:port=1:interface=\\:\\:1:backlog=511"),
            ("ssl:443:privateKey=k.pem", "ssl:443:privateKey=k.pem:backlog=511"),
            ("unix:/run/u.sock", "unix:/run/u.sock:backlog=511"),
            ("haproxy:tcp:9601", "haproxy:tcp:9601:backlog=511"),
            ("TCP:1", "TCP:1:backlog=511"),
        ]:
            self.assertEqual(withDefaultBacklog(given), expected)

    def test_kept(self) -> None:
        """
        An endpoint that sets its backlog keeps it; endpoints without a
        backlog of their own (systemd's socket is already listening) are
        left alone.
        """
        for given in ["tcp:1:backlog=5", "haproxy:tcp:1:backlog=5", "systemd:domain=INET:index=0"]:
            self.assertEqual(withDefaultBacklog(given), given)

    def test_escapedColonsAreNotSeparators(self) -> None:
        """
        C{\\:} is part of a field.
        """
        self.assertEqual(
            splitFields("tcp6:interface=\\:\\:1:backlog=3"),
            [
                "tcp6",
                "interface=\\:\\:1",
                "backlog=3",
            ],
        )


class SystemdTests(SynchronousTestCase):
    """
    A socket passed by systemd must be of the family its endpoint names.
    """

    def passed(self, family: int) -> int:
        """
        A listening socket of C{family}, as systemd would pass it; its
        descriptor number.
        """
        s = socket.socket(family, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        return s.fileno()

    def environ(self, count: int = 1, names: str = "") -> dict[str, str]:
        return {"LISTEN_FDS": str(count), "LISTEN_PID": "1", "LISTEN_FDNAMES": names}

    def test_mismatchNamed(self) -> None:
        """
        An IPv6 socket (what C{ListenStream=9527} makes) read as
        C{domain=INET} is reported, with the fix, whether or not the
        environment still describes systemd's sockets.
        """
        fd = self.passed(socket.AF_INET6)
        expected = (
            f"systemd socket 0 (descriptor {fd}) is INET6, "
            "but the endpoint says domain=INET: use domain=INET6"
        )
        for environ in (self.environ(), {}):
            problem = systemdSocketProblem("systemd:domain=INET:index=0", environ, fd)
            self.assertEqual(problem, expected)

    def test_match(self) -> None:
        """
        A socket of the family the endpoint names is fine.
        """
        fd = self.passed(socket.AF_INET6)
        self.assertIsNone(systemdSocketProblem("systemd:domain=INET6:index=0", self.environ(), fd))

    def test_byName(self) -> None:
        """
        A socket named in C{LISTEN_FDNAMES} is found by its name.
        """
        fd = self.passed(socket.AF_INET)
        environ = self.environ(count=2, names="other:uppercase.socket")
        problem = systemdSocketProblem(
            "systemd:domain=INET6:name=uppercase.socket", environ, fd - 1
        )
        self.assertIn(f"(descriptor {fd}) is INET,", str(problem))

    def test_missingIndex(self) -> None:
        """
        An index systemd did not pass is reported.
        """
        self.assertEqual(
            systemdSocketProblem("systemd:domain=INET:index=2", self.environ(1)),
            "systemd passed 1 sockets, none with index 2",
        )

    def test_notSystemd(self) -> None:
        """
        Other endpoints, and descriptors that are not sockets, are not this
        check's business.
        """
        self.assertIsNone(systemdSocketProblem("tcp:1", self.environ()))
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        self.addCleanup(os.close, w)
        self.assertIsNone(systemdSocketProblem("systemd:domain=INET:index=0", {}, r))
