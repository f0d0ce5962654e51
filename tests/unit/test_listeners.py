"""
The supervisor's listening sockets and the workers' adoption of them: real
sockets on loopback (bound to port 0), no reactor running.
"""

from __future__ import annotations

import os
import socket
import tempfile
from typing import Any

from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from uppercase._listeners import (
    ADOPTED,
    SocketAdopter,
    listenThrough,
    planSockets,
    workerDescription,
)


class MakerTests(SynchronousTestCase):
    """
    The supervisor makes, from endpoint strings, the sockets its workers
    will adopt.
    """

    def test_tcpSocketPerSlot(self) -> None:
        """
        A TCP endpoint gets one listening, non-blocking socket per slot, all
        on the same port (the one the kernel picked for port 0), with the
        endpoint's backlog and C{SO_REUSEPORT}.
        """
        maker = planSockets(["tcp:0:interface=127.0.0.1:backlog=7"], 3, listenThrough)
        self.addCleanup(maker.close)
        [planned] = maker.endpoints
        self.assertEqual([p.slot for p in planned], [0, 1, 2])
        ports = {p.socket.getsockname()[1] for p in planned}
        self.assertEqual(len(ports), 1)
        for p in planned:
            self.assertFalse(p.socket.getblocking())
            self.assertEqual(p.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT), 1)
            self.assertEqual(p.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN), 1)
        self.assertEqual(maker.socketsFor(1), [planned[1].fileno()])

    def test_unixShared(self) -> None:
        """
        A UNIX endpoint gets one socket, which every slot shares; closing
        removes its file.
        """
        path = os.path.join(tempfile.mkdtemp(), "u.sock")
        maker = planSockets([f"unix:{path}"], 2, listenThrough)
        self.assertEqual(maker.socketsFor(0), maker.socketsFor(1))
        self.assertTrue(os.path.exists(path))
        maker.close()
        self.assertFalse(os.path.exists(path))

    def test_failureClosesWhatWasMade(self) -> None:
        """
        If one endpoint cannot be made, the sockets of those before it are
        closed again and the error is raised.
        """
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        made: list[Any] = []

        def listen(maker: Any, description: str) -> object:
            made.append(maker)
            return listenThrough(maker, description)

        self.assertRaises(
            OSError,
            planSockets,
            ["tcp:0:interface=127.0.0.1", f"tcp:{port}:interface=127.0.0.1"],
            2,
            listen,
        )
        self.assertEqual(made[0].endpoints, [])


class AdopterTests(SynchronousTestCase):
    """
    A worker adopts the sockets it was given where Twisted would have bound
    them.
    """

    def test_adoptsInOrder(self) -> None:
        """
        Each C{listen*} call adopts the next socket, with its own family, and
        the passed descriptor is closed (the reactor listens on a copy).
        """
        reactor = MemoryReactorClock()
        sock = socket.socket(socket.AF_INET6)
        fd = os.dup(sock.fileno())
        sock.close()
        adopter = SocketAdopter(reactor, [fd])
        factory = Factory()
        adopter.listenTCP(9527, factory)
        [(adopted, family, used)] = reactor.adoptedPorts
        self.assertEqual((adopted, family, used), (fd, socket.AF_INET6, factory))
        self.assertRaises(OSError, os.fstat, fd)
        self.assertRaises(RuntimeError, adopter.listenTCP, 9528, factory)

    def test_systemdNotParsed(self) -> None:
        """
        A worker parses a plain stand-in for a C{systemd:} endpoint (whose
        socket the supervisor passes), and every other string as it is.
        """
        self.assertEqual(workerDescription("systemd:domain=INET6:index=0"), ADOPTED)
        self.assertEqual(workerDescription("ssl:443:privateKey=k"), "ssl:443:privateKey=k")
