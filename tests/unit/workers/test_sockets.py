"""
The supervisor's listening sockets and the workers' adoption of them: real
sockets on loopback (bound to port 0), no reactor running.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import tempfile
from typing import Any

from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from uppercase.net import transport as transportModule
from uppercase.net.adopt import ADOPTED, SocketAdopter, workerDescription
from uppercase.workers.sockets import (
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

    def unixSocket(self, mode: int) -> tuple[str, int]:
        """
        A listening UNIX socket, as the supervisor makes it (its file with
        C{mode}; kept as C{self.shared}): its path, and a descriptor for the
        worker to adopt.
        """
        folder = shortFolder(self)
        path = os.path.join(folder, "u.sock")
        self.shared = socket.socket(socket.AF_UNIX)
        self.addCleanup(self.shared.close)
        self.shared.bind(path)
        os.chmod(path, mode)
        self.shared.listen(5)
        return path, os.dup(self.shared.fileno())

    def assertStillListening(self, path: str) -> None:
        """
        The supervisor's socket still takes connections at C{path}.
        """
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)
            self.shared.settimeout(1)
            accepted, _ = self.shared.accept()
            accepted.close()

    def test_unixFileLeftAlone(self) -> None:
        """
        A worker that adopts a UNIX socket leaves it as the supervisor made
        it: its file's mode unchanged (not made world-writable), and, once
        the worker stops listening (a reload, a stop), its file still there
        and the socket still listening, for the other workers and the next
        one.
        """
        path, fd = self.unixSocket(0o600)
        reactor = MemoryReactorClock()
        port = SocketAdopter(reactor, [fd]).listenUNIX(path, Factory())
        self.assertRaises(OSError, os.fstat, fd)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertIn(port, reactor.readers)
        port.stopListening()
        reactor.advance(0)
        self.assertNotIn(port, reactor.readers)
        self.assertTrue(stat.S_ISSOCK(os.stat(path).st_mode))
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertStillListening(path)

    def test_unixPortNonBlocking(self) -> None:
        """
        The adopted UNIX socket listens in non-blocking mode even if its
        descriptor came blocking (PyPy's socket objects made from a
        descriptor make it so): a blocking one would hold the reactor in
        C{accept()} after each connection.
        """
        path, fd = self.unixSocket(0o600)
        os.set_blocking(fd, True)
        port = SocketAdopter(MemoryReactorClock(), [fd]).listenUNIX(path, Factory())
        self.addCleanup(port.stopListening)
        self.assertFalse(os.get_blocking(port.fileno()))  # type: ignore[attr-defined]

    def test_unixPortNonBlockingFallback(self) -> None:
        """
        On the fallback too, the descriptor is non-blocking when Twisted's
        C{adoptStreamPort} takes it.
        """
        path, fd = self.unixSocket(0o600)
        os.set_blocking(fd, True)
        self.patch(transportModule, "_sharedPortClass", lambda: None)
        reactor = MemoryReactorClock()
        blocking: list[bool] = []

        def adoptStreamPort(fileDescriptor: int, family: int, factory: Factory) -> object:
            blocking.append(os.get_blocking(fileDescriptor))
            return object()

        reactor.adoptStreamPort = adoptStreamPort  # type: ignore[method-assign]
        with capturedLogs():
            SocketAdopter(reactor, [fd]).listenUNIX(path, Factory())
        self.assertEqual(blocking, [False])

    def test_sharedPortNeedsEveryPiece(self) -> None:
        """
        The shared UNIX port is used only while Twisted's ports have every
        piece it relies on: without TCP's C{_shouldShutdown} (its setting
        would do nothing, and a retiring worker would shut the socket down
        for all), the public fallback is used instead.
        """
        from twisted.internet import tcp

        self.assertIsNotNone(transportModule._sharedPortClass())
        owner = next(k for k in tcp.Port.__mro__ if "_shouldShutdown" in vars(k))
        original = vars(owner)["_shouldShutdown"]
        delattr(owner, "_shouldShutdown")
        self.addCleanup(setattr, owner, "_shouldShutdown", original)
        self.assertIsNone(transportModule._sharedPortClass())

    def test_unixFileLeftAloneFallback(self) -> None:
        """
        If Twisted's UNIX port changes shape, a worker adopts the socket with
        the public C{adoptStreamPort}, sets the file's mode back at once,
        stops accepting by no longer reading the socket (closing it would
        remove the file), and says so once.
        """
        path, fd = self.unixSocket(0o600)
        self.patch(transportModule, "_sharedPortClass", lambda: None)
        reactor = MemoryReactorClock()
        removed: list[object] = []
        reactor.removeReader = removed.append  # type: ignore[method-assign]

        adopted = object()

        def adoptStreamPort(fileDescriptor: int, family: int, factory: Factory) -> object:
            self.assertEqual(family, socket.AF_UNIX)
            os.chmod(path, 0o666)  # as Twisted's adopted UNIX port does
            return adopted

        reactor.adoptStreamPort = adoptStreamPort  # type: ignore[method-assign]
        with capturedLogs() as events:
            port = SocketAdopter(reactor, [fd]).listenUNIX(path, Factory())
        self.assertEqual(len(events), 1)
        self.assertIn("UNIX port has changed", events[0]["log_format"])
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.successResultOf(defer.maybeDeferred(port.stopListening))
        self.assertEqual(removed, [adopted])
        self.assertStillListening(path)

    def test_systemdNotParsed(self) -> None:
        """
        A worker parses a plain stand-in for a C{systemd:} endpoint (whose
        socket the supervisor passes), and every other string as it is.
        """
        self.assertEqual(workerDescription("systemd:domain=INET6:index=0"), ADOPTED)
        self.assertEqual(workerDescription("ssl:443:privateKey=k"), "ssl:443:privateKey=k")
