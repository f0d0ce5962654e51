"""
Listening sockets made by a supervisor and adopted by its workers.

With C{--workers N}, the supervisor opens every listening socket itself and
keeps it open for as long as it runs; each worker adopts its share.  Both
sides run the same endpoint strings through Twisted's own parser, each with
a stand-in reactor: the supervisor's (L{SocketMaker}) creates the sockets
Twisted asks for, the workers' (L{uppercase.net.adopt.SocketAdopter}) adopts them where Twisted
would have bound them.  So every endpoint type that listens through
C{listenTCP}, C{listenSSL}, C{listenUNIX} or C{adoptStreamPort} works
(C{tcp}, C{tcp6}, C{ssl}, C{unix}, C{systemd}, and C{haproxy:} in front of
them), with its options parsed once, by Twisted.

How the sockets are shared, and why:

  - B{TCP and TLS}: one C{SO_REUSEPORT} socket per worker slot, all bound
    to the same address.  The kernel spreads new connections over them by a
    hash of the connection's addresses, so each worker gets an even share
    whatever it is doing; one socket shared by all would let whichever
    worker wakes first take most of them.  A port something already listens
    on is refused first (L{claimPort}), as for a single process.
  - B{UNIX sockets and sockets from systemd}: one socket, shared by every
    worker (Linux does not spread UNIX connections, and systemd passes one
    socket).  A UNIX socket's path is locked as Twisted's C{unix:} endpoint
    locks it (L{lockSocketPath}), so a socket file left by a server that was
    killed is removed, as a single process removes it.

Because the supervisor holds every socket, a worker that exits -- killed,
crashed, or retired by a reload -- closes only its own copy: the connections
waiting in the socket's queue stay there for the worker that replaces it,
instead of being reset with the last copy of the socket.
"""

from __future__ import annotations

import os
import socket
import stat
from typing import Any, Callable

from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure
from twisted.python.lockfile import FilesystemLock
from zope.interface import implementer

__all__ = [
    "Planned",
    "SocketMaker",
    "claimPort",
    "listenThrough",
    "lockSocketPath",
    "planSockets",
]


class Planned:
    """
    A listening socket the supervisor made, and who gets it.

    @ivar socket: the socket.
    @ivar slot: the worker slot it belongs to, or L{None} when every worker
        shares it.
    """

    def __init__(self, sock: socket.socket, slot: int | None) -> None:
        self.socket = sock
        self.slot = slot

    def fileno(self) -> int:
        return self.socket.fileno()


@implementer(IListeningPort)
class _NotListening:
    """
    What the stand-in reactors give Twisted's endpoint in place of a port:
    nothing to stop (the sockets live on elsewhere).
    """

    def __init__(self, address: Any) -> None:
        self._address = address

    def startListening(self) -> None:
        pass

    def stopListening(self) -> None:
        pass

    def getHost(self) -> Any:
        return self._address


class SocketMaker:
    """
    A stand-in reactor whose C{listen*} methods create listening sockets for
    C{slots} workers instead of listening: each call is one endpoint, in the
    order the endpoint strings are given.

    @ivar endpoints: per endpoint, the sockets made for it.
    """

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.endpoints: list[list[Planned]] = []
        self._paths: list[str] = []
        self._locks: list[FilesystemLock] = []

    def listenTCP(
        self, port: int, factory: IProtocolFactory, backlog: int = 50, interface: str = ""
    ) -> _NotListening:
        family = socket.AF_INET6 if ":" in interface else socket.AF_INET
        if port:
            claimPort(family, interface, port)
        made: list[Planned] = []
        try:
            for slot in range(self.slots):
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.setblocking(False)
                made.append(Planned(sock, slot))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                sock.bind((interface, port))
                # Port 0: every slot's socket takes the port the first got.
                port = sock.getsockname()[1]
                sock.listen(backlog)
        except OSError:
            for planned in made:
                planned.socket.close()
            raise
        self.endpoints.append(made)
        return _NotListening(made[0].socket.getsockname())

    def listenSSL(
        self,
        port: int,
        factory: IProtocolFactory,
        contextFactory: Any,
        backlog: int = 50,
        interface: str = "",
    ) -> _NotListening:
        return self.listenTCP(port, factory, backlog, interface)

    def listenUNIX(
        self,
        address: str,
        factory: IProtocolFactory,
        backlog: int = 50,
        mode: int = 0o666,
        wantPID: int = 0,
    ) -> _NotListening:
        lock = lockSocketPath(address) if wantPID else None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.bind(address)
        except OSError:
            sock.close()
            if lock is not None:
                lock.unlock()
            raise
        if lock is not None:
            self._locks.append(lock)
        self._paths.append(address)
        self.endpoints.append([Planned(sock, None)])
        os.chmod(address, mode)
        sock.listen(backlog)
        return _NotListening(address)

    def listenUDP(self, port: int, interface: str = "") -> _NotListening:
        """
        Make one C{SO_REUSEPORT} UDP socket per worker slot on C{(interface,
        port)}: the kernel spreads the datagrams over them by a hash of
        their addresses, so one source's datagrams reach one worker.
        """
        family = socket.AF_INET6 if ":" in interface else socket.AF_INET
        if port:
            claimPort(family, interface, port, socket.SOCK_DGRAM)
        made: list[Planned] = []
        try:
            for slot in range(self.slots):
                sock = socket.socket(family, socket.SOCK_DGRAM)
                sock.setblocking(False)
                made.append(Planned(sock, slot))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                sock.bind((interface, port))
                port = sock.getsockname()[1]
        except OSError:
            for planned in made:
                planned.socket.close()
            raise
        self.endpoints.append(made)
        return _NotListening(made[0].socket.getsockname())

    def adoptStreamPort(
        self, fileDescriptor: int, addressFamily: int, factory: IProtocolFactory
    ) -> _NotListening:
        # The socket's own type: systemd passes datagram sockets too
        # (ListenDatagram=), which the workers adopt as such.
        sock = socket.socket(fileno=os.dup(fileDescriptor))
        sock.setblocking(False)
        self.endpoints.append([Planned(sock, None)])
        return _NotListening(None)

    def socketsFor(self, slot: int) -> list[int]:
        """
        The descriptors worker C{slot} adopts, one per endpoint, in order.
        """
        return [
            next(p for p in planned if p.slot in (None, slot)).fileno()
            for planned in self.endpoints
        ]

    def close(self) -> None:
        """
        Close every socket, and remove the UNIX sockets' files (the server is
        stopping, or could not start).
        """
        for planned in self.endpoints:
            for p in planned:
                p.socket.close()
        self.endpoints = []
        for path in self._paths:
            try:
                os.unlink(path)
            except OSError:
                pass
        self._paths = []
        for lock in self._locks:
            lock.unlock()
        self._locks = []


def lockSocketPath(path: str) -> FilesystemLock | None:
    """
    Lock a UNIX socket's path as Twisted's C{unix:} endpoint does by
    default (C{lockfile=1}): a C{PATH.lock} naming this process.  If the
    lock was left by a process that is gone, remove the socket file it left
    too -- if it is a socket, and nobody listens on it -- so that a server
    killed without cleaning up does not keep the next one from starting.

    @return: the lock (L{None} for an abstract socket, which has no file).
    @raise CannotListenError: if a running process holds the lock.
    """
    if path.startswith("\0"):
        return None
    lock = FilesystemLock(path + ".lock")
    if not lock.lock():
        raise CannotListenError(None, path, "Cannot acquire lock")
    if not lock.clean and _staleSocket(path):
        try:
            os.unlink(path)
        except OSError:
            pass
    return lock


def _staleSocket(path: str) -> bool:
    """
    Whether C{path} is a UNIX socket's file that nobody listens on.
    """
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return False
    except OSError:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        # Non-blocking: a listener whose queue is full answers EAGAIN (it
        # listens) instead of holding the start-up up.
        probe.setblocking(False)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
    return False


def claimPort(family: int, interface: str, port: int, kind: int = socket.SOCK_STREAM) -> None:
    """
    Check that nothing listens on C{(interface, port)} yet, as binding a
    socket without C{SO_REUSEPORT} does (Twisted's own listeners bind so):
    C{SO_REUSEPORT} sockets would join another server's group on the same
    port -- another C{--workers} server, or the same C{--listen} given twice
    -- and split its connections with it instead of failing.

    @raise OSError: C{EADDRINUSE} if something listens there.
    """
    with socket.socket(family, kind) as probe:
        if kind == socket.SOCK_STREAM:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((interface, port))


def planSockets(
    descriptions: list[str], slots: int, listen: Callable[[Any, str], object]
) -> SocketMaker:
    """
    Make the listening sockets for C{slots} workers serving C{descriptions}:
    C{listen(maker, description)} runs one description through Twisted's
    parser against the socket-making reactor.

    @raise Exception: what making a socket raised (the sockets made before
        are closed).
    """
    maker = SocketMaker(slots)
    try:
        for description in descriptions:
            listen(maker, description)
    except BaseException:
        maker.close()
        raise
    return maker


def listenThrough(reactor: Any, description: str) -> object:
    """
    Listen on C{description} (an endpoint string, without C{haproxy:})
    through C{reactor}, as Twisted's endpoint parser would, with a factory
    that is never used.
    """
    outcome: list[object] = []
    serverFromString(reactor, description).listen(Factory()).addBoth(outcome.append)
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    return outcome[0]
