"""
The supervisor's listening sockets, made for its workers to adopt: real
sockets on loopback (bound to port 0), no reactor running.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
from typing import Any

from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory
from twisted.trial.unittest import SynchronousTestCase

from uppercase.workers.sockets import (
    SocketMaker,
    listenThrough,
    planSockets,
)


def shortFolder(test: SynchronousTestCase) -> str:
    """
    A new short-named folder (UNIX socket paths are limited to 107 bytes,
    which trial's own temporary paths can exceed), removed after C{test}.
    """
    path = tempfile.mkdtemp()
    test.addCleanup(shutil.rmtree, path, True)
    return path


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

    def test_udpSocketPerSlot(self) -> None:
        """
        A UDP port gets one bound, non-blocking datagram socket per slot,
        all on the same port, with C{SO_REUSEPORT}; a UDP port in use
        (bound without it) is refused.
        """
        maker = SocketMaker(2)
        self.addCleanup(maker.close)
        maker.listenUDP(0, "127.0.0.1")
        [planned] = maker.endpoints
        self.assertEqual(len({p.socket.getsockname()[1] for p in planned}), 1)
        for p in planned:
            self.assertEqual(p.socket.type, socket.SOCK_DGRAM)
            self.assertFalse(p.socket.getblocking())
            self.assertEqual(p.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT), 1)
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(other.close)
        other.bind(("127.0.0.1", 0))
        self.assertRaises(OSError, maker.listenUDP, other.getsockname()[1], "127.0.0.1")

    def test_adoptedDatagramSocketKeepsItsType(self) -> None:
        """
        A socket systemd passed (adopted through C{adoptStreamPort} by
        Twisted's C{systemd:} endpoint) keeps its own type: a datagram one
        (C{ListenDatagram=}) is passed on to the workers as such.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        maker = SocketMaker(2)
        self.addCleanup(maker.close)
        maker.adoptStreamPort(sock.fileno(), socket.AF_INET, Factory())
        self.assertEqual(maker.endpoints[0][0].socket.type, socket.SOCK_DGRAM)

    def test_unixShared(self) -> None:
        """
        A UNIX endpoint gets one socket, which every slot shares; closing
        removes its file.
        """
        path = os.path.join(shortFolder(self), "u.sock")
        maker = planSockets([f"unix:{path}"], 2, listenThrough)
        self.assertEqual(maker.socketsFor(0), maker.socketsFor(1))
        self.assertTrue(os.path.exists(path))
        maker.close()
        self.assertFalse(os.path.exists(path))

    def leftBehind(self, lock: bool) -> str:
        """
        The path of a UNIX socket's file left by a server that was killed
        (nobody listens on it), with the lock it held (C{lock}: naming a
        process that is gone) or without.
        """
        path = os.path.join(shortFolder(self), "u.sock")
        with socket.socket(socket.AF_UNIX) as gone:
            gone.bind(path)
            gone.listen(1)
        if lock:
            os.symlink("999999999", path + ".lock")
        return path

    def test_unixLeftBehindRemoved(self) -> None:
        """
        A UNIX socket's file left by a killed server, with its stale lock, is
        removed and made again (as Twisted's C{unix:} endpoint does for a
        single process); the path is locked while the sockets exist.
        """
        path = self.leftBehind(lock=True)
        maker = planSockets([f"unix:{path}"], 2, listenThrough)
        self.assertEqual(os.readlink(path + ".lock"), str(os.getpid()))
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)
        maker.close()
        self.assertFalse(os.path.lexists(path + ".lock"))

    def test_unixLeftBehindWithoutLock(self) -> None:
        """
        A socket file without a stale lock (no server of ours left it) is
        not removed: the path is in use, as for a single process.
        """
        path = self.leftBehind(lock=False)
        error = self.assertRaises(OSError, planSockets, [f"unix:{path}"], 2, listenThrough)
        self.assertIn("Address already in use", str(error))
        self.assertFalse(os.path.lexists(path + ".lock"))

    def test_unixListenedOnKept(self) -> None:
        """
        A socket file that a server listens on is never removed, even if its
        lock is stale; the lock is let go again.
        """
        path = self.leftBehind(lock=True)
        os.unlink(path)
        live = socket.socket(socket.AF_UNIX)
        self.addCleanup(live.close)
        live.bind(path)
        live.listen(1)
        self.assertRaises(OSError, planSockets, [f"unix:{path}"], 2, listenThrough)
        self.assertTrue(os.path.exists(path))
        self.assertFalse(os.path.lexists(path + ".lock"))

    def test_unixListenedOnWithFullQueue(self) -> None:
        """
        A socket file whose listener's queue is full is a socket in use,
        found so at once: the check does not wait for the queue to drain.
        """
        path = self.leftBehind(lock=True)
        os.unlink(path)
        live = socket.socket(socket.AF_UNIX)
        self.addCleanup(live.close)
        live.bind(path)
        live.listen(0)
        try:
            while True:
                waiting = socket.socket(socket.AF_UNIX)
                self.addCleanup(waiting.close)
                waiting.setblocking(False)
                waiting.connect(path)
        except BlockingIOError:
            pass

        class Late(Exception):
            """The check waited on a full queue (not an OSError)."""

        def late(number: int, frame: object) -> None:
            raise Late()

        previous = signal.signal(signal.SIGALRM, late)
        self.addCleanup(signal.signal, signal.SIGALRM, previous)
        self.addCleanup(signal.setitimer, signal.ITIMER_REAL, 0)
        signal.setitimer(signal.ITIMER_REAL, 5)
        self.assertRaises(OSError, planSockets, [f"unix:{path}"], 2, listenThrough)
        self.assertTrue(os.path.exists(path))

    def test_unixLockedByARunningServer(self) -> None:
        """
        A path locked by a running process is not touched: the endpoint
        cannot listen, saying why.
        """
        path = os.path.join(shortFolder(self), "u.sock")
        os.symlink(str(os.getppid()), path + ".lock")
        error = self.assertRaises(
            CannotListenError, planSockets, [f"unix:{path}"], 2, listenThrough
        )
        self.assertIn("Cannot acquire lock", str(error))
        self.assertEqual(os.readlink(path + ".lock"), str(os.getppid()))

    def test_unixWithoutLockfile(self) -> None:
        """
        C{lockfile=0} makes no lock, as for a single process.
        """
        path = os.path.join(shortFolder(self), "u.sock")
        maker = planSockets([f"unix:{path}:lockfile=0"], 1, listenThrough)
        self.addCleanup(maker.close)
        self.assertFalse(os.path.lexists(path + ".lock"))

    def test_portInUseByAnotherGroup(self) -> None:
        """
        A port that another C{SO_REUSEPORT} listener holds (another
        C{--workers} server) is refused with "Address already in use", as
        for a single process, instead of joining its group and splitting
        its connections.
        """
        other = socket.socket()
        self.addCleanup(other.close)
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        port = other.getsockname()[1]
        error = self.assertRaises(
            OSError, planSockets, [f"tcp:{port}:interface=127.0.0.1"], 2, listenThrough
        )
        self.assertIn("Address already in use", str(error))

    def test_sameListenTwice(self) -> None:
        """
        The same port given twice is refused, as for a single process.
        """
        maker = planSockets(["tcp:0:interface=127.0.0.1"], 2, listenThrough)
        port = maker.endpoints[0][0].socket.getsockname()[1]
        maker.close()
        self.assertRaises(
            OSError,
            planSockets,
            [f"tcp:{port}:interface=127.0.0.1", f"tcp:{port}:interface=127.0.0.1"],
            2,
            listenThrough,
        )

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
