"""
A worker's side of the sockets its supervisor shares (L{uppercase.workers}):
a stand-in reactor through which a server's endpoint strings adopt the
listening sockets it was passed, where Twisted would have bound new ones.
The server's service uses it in a worker; the supervisor that makes the
sockets is L{uppercase.workers.sockets}.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from twisted.internet.interfaces import IListeningPort, IProtocolFactory

from uppercase.net.transport import adoptSharedUNIXPort

__all__ = ["ADOPTED", "SocketAdopter", "workerDescription"]


class SocketAdopter:
    """
    A stand-in reactor for a worker: its C{listen*} methods adopt, one per
    call and in order, the sockets the supervisor passed (C{descriptors})
    into C{reactor}; anything else is C{reactor}'s.

    TLS endpoints (C{listenSSL}) get the context Twisted parsed from their
    string, around the adopted socket.  A UNIX socket's file is left as the
    supervisor made it (L{adoptSharedUNIXPort}).  A worker never parses a C{systemd:}
    string (systemd's sockets are the supervisor's): L{workerDescription}
    stands in for it.
    """

    def __init__(self, reactor: Any, descriptors: list[int]) -> None:
        self._reactor = reactor
        self._descriptors = list(descriptors)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)

    def _next(self) -> tuple[int, int, Any]:
        """
        The next descriptor, its family and its address.
        """
        if not self._descriptors:
            raise RuntimeError("more endpoints than sockets passed by the supervisor")
        fd = self._descriptors.pop(0)
        probe = socket.socket(fileno=fd)
        family, address = probe.family, probe.getsockname()
        probe.detach()
        return fd, family, address

    def _adopt(self, factory: IProtocolFactory) -> IListeningPort:
        fd, family, address = self._next()
        # As adoptStreamPort requires; after the probe, which on PyPy makes
        # the socket blocking.
        os.set_blocking(fd, False)
        if family == socket.AF_UNIX:
            # The socket's file is the supervisor's: a worker neither
            # changes its mode nor removes it (on a reload, or a stop).
            port = adoptSharedUNIXPort(self._reactor, fd, factory, address)
        else:
            port = self._reactor.adoptStreamPort(fd, family, factory)
        os.close(fd)  # the port listens on a duplicate
        return port

    def listenTCP(
        self, port: int, factory: IProtocolFactory, backlog: int = 50, interface: str = ""
    ) -> IListeningPort:
        return self._adopt(factory)

    def listenSSL(
        self,
        port: int,
        factory: IProtocolFactory,
        contextFactory: Any,
        backlog: int = 50,
        interface: str = "",
    ) -> IListeningPort:
        # Here, not at the top: twisted.protocols.tls needs pyOpenSSL (the
        # optional [tls] extra), which only an ssl: endpoint needs.
        from twisted.protocols.tls import TLSMemoryBIOFactory

        return self._adopt(TLSMemoryBIOFactory(contextFactory, False, factory))

    def listenUNIX(
        self,
        address: str,
        factory: IProtocolFactory,
        backlog: int = 50,
        mode: int = 0o666,
        wantPID: int = 0,
    ) -> IListeningPort:
        return self._adopt(factory)


ADOPTED = "tcp:0"
"""What a worker parses in place of an endpoint that adopts a socket (a
C{systemd:} one): any listener will do, since the worker adopts whatever
socket the supervisor passed for it."""


def workerDescription(description: str) -> str:
    """
    The endpoint string a worker listens with for C{description} (without
    C{haproxy:}): the same, but for C{systemd:} endpoints.
    """
    if description.split(":", 1)[0].lower() == "systemd":
        return ADOPTED
    return description
