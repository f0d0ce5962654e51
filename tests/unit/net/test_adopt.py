"""
Specification of L{uppercase.net.adopt}: a worker adopts the sockets its supervisor shares.
"""

from __future__ import annotations

import os
import socket
import stat

from twisted.internet import defer
from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from tests.unit.workers.test_sockets import shortFolder
from uppercase.net import transport as transportModule
from uppercase.net.adopt import ADOPTED, SocketAdopter, workerDescription


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
