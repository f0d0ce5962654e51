"""
The one place that knows Twisted's transports beyond their public interfaces.

Four things need more than the public API:

- B{Sending a reply at once} (L{writeDirectly}).  Twisted's
  C{transport.write} appends to the transport's buffer and asks the reactor
  to watch the socket for writability; the bytes leave on the next reactor
  turn, after another C{epoll_wait} and two C{epoll_ctl} calls.  For an echo
  server that is a large share of its time on small messages.  When the
  transport's buffer is empty, C{socket.send} straight away is equivalent
  (the bytes would be next on the wire anyway) and saves the turn.  It
  applies to chunks of up to L{DIRECT_LIMIT} bytes: a bigger chunk means a
  stream is flowing, and Twisted's buffer then sends it with whatever else
  is queued in one call (measured, a 64 KiB stream runs about 15% faster
  that way than sent chunk by chunk).  Whatever C{send} does not take goes
  through C{transport.write}, so byte order, flow control and half-close
  stay Twisted's; a send error ends the connection as Twisted's own failed
  send does (L{ConnectionLost}, keeping the reset the kernel told only
  this send about).
- B{Knowing how many written bytes are still queued} (L{pendingBytes}), to
  tell a clean end from a loss when a peer closes before reading everything.
- B{Handing a connection to another protocol} (L{splice}): once a PROXY
  header is read, the connection's bytes go straight to the protocol behind
  it, so that a PROXY connection costs what a plain one does.
- B{Listening on a UNIX socket another process owns} (L{adoptSharedUNIXPort}):
  a worker of C{--workers} must neither make the socket's file
  world-writable when it starts (Twisted's adopted UNIX port sets mode
  C{0666}) nor remove it or shut the socket down when it stops (Twisted's
  does both, and the socket is its supervisor's, still serving the other
  workers).  This uses Twisted's C{unix.Port._fromListeningDescriptor}, as
  C{reactor.adoptStreamPort} does, and its C{_shouldShutdown}, as its TCP
  port does for an adopted socket; without the first, the public
  C{adoptStreamPort} is used, the mode put back at once, and the port
  stopped by no longer reading it (its socket closes when the worker ends).

The first two read the buffer fields of Twisted's file-descriptor transports
(C{_tempDataLen}, C{dataBuffer}, C{offset}, C{_writeDisconnecting}, C{_aborting}), the same
from Twisted 24.7 to 26.10; the third sets their C{protocol} attribute.
L{supportsDirectWrites} checks once per transport class that they are
there; if a future Twisted renames them, it logs one warning and everything
falls back to the public API (plain C{transport.write}; "pending bytes
unknown").  The fourth checks its pieces (C{_fromListeningDescriptor},
C{_shouldShutdown}, the TCP port's C{connectionLost}) before each use, and
falls back as said above.  Nothing else in the package reads Twisted's
private attributes.

Closing is decided by interfaces, never by looking for methods through
wrappers (L{canHalfClose}): a TLS transport is closed with TLS's own
C{close_notify}, never by half-closing the TCP stream beneath it.
"""

from __future__ import annotations

import os
import socket
import stat
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import (
    IHalfCloseableDescriptor,
    IListeningPort,
    IProtocolFactory,
    ISSLTransport,
    ITCPTransport,
    ITransport,
)
from twisted.internet.tcp import Connection
from twisted.internet.tcp import Port as TCPPort
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = [
    "DIRECT_LIMIT",
    "adoptSharedUNIXPort",
    "canHalfClose",
    "directWriteTarget",
    "pendingBytes",
    "splice",
    "writeDirectly",
]

log = Logger()

DIRECT_LIMIT = 16384
"""The biggest chunk L{writeDirectly} sends at once."""

BUFFER_FIELDS = (
    "_tempDataLen",
    "dataBuffer",
    "offset",
    "_writeDisconnecting",
    "_aborting",
    "socket",
)
"""The attributes of Twisted's file-descriptor transports that this module
reads."""

_checked: dict[type, bool] = {}
"""Per transport class: whether it has L{BUFFER_FIELDS}."""


def _hasBufferFields(transport: object) -> bool:
    """
    Whether C{transport}'s class keeps its write buffer where this module
    looks for it; checked once per class, with one warning if not.
    """
    kind = type(transport)
    known = _checked.get(kind)
    if known is not None:
        return known
    missing = [name for name in BUFFER_FIELDS if not hasattr(transport, name)]
    if not missing:
        try:
            _pendingOf(transport)
        except Exception as e:
            missing = [f"unexpected buffer layout: {e}"]
    _checked[kind] = not missing
    if missing:
        from twisted import __version__ as twistedVersion

        log.warn(
            "Twisted {twisted}'s {transport} has no {missing}: replies go through "
            "transport.write (correct, somewhat slower)",
            twisted=twistedVersion,
            transport=f"{kind.__module__}.{kind.__qualname__}",
            missing=", ".join(missing),
        )
    return not missing


def _pendingOf(transport: Any) -> int:
    return int(transport._tempDataLen) + len(transport.dataBuffer) - int(transport.offset)


def directWriteTarget(transport: object) -> Connection | None:
    """
    The transport L{writeDirectly} may write to for C{transport}, or L{None}:
    one of Twisted's own TCP or UNIX-socket transports, not TLS, whose buffer
    fields are where this module expects them -- C{transport} itself, or the
    one it stands for (a transport whose C{directWriteTarget()} names it, as
    L{uppercase.proxy}'s does for a connection behind a PROXY header).
    """
    target = transport
    if not isinstance(target, Connection):
        standsFor = getattr(type(transport), "directWriteTarget", None)
        target = standsFor(transport) if callable(standsFor) else None
    if (
        isinstance(target, Connection)
        and not ISSLTransport.providedBy(target)
        and not ISSLTransport.providedBy(transport)
        and _hasBufferFields(target)
    ):
        return target
    return None


def splice(transport: object, protocol: object) -> bool:
    """
    Make C{protocol} the one C{transport} delivers to from now on (its
    bytes, half-close and close), if C{transport} is one of Twisted's own
    TCP or UNIX-socket transports.

    @return: whether it was done; if not, the caller keeps forwarding.
    """
    if isinstance(transport, Connection) and getattr(transport, "protocol", None) is not None:
        transport.protocol = protocol  # type: ignore[assignment]
        return True
    return False


def writeDirectly(transport: Any, data: bytes) -> None:
    """
    Write C{data} to C{transport} (one L{directWriteTarget} gave), sending
    at once what the kernel takes if nothing is queued before it and C{data}
    is at most L{DIRECT_LIMIT} bytes.
    """
    if (
        len(data) > DIRECT_LIMIT
        or transport._aborting
        or transport._tempDataLen
        or transport.dataBuffer
        or transport.disconnecting
        or transport._writeDisconnecting
    ):
        transport.write(data)
        return
    try:
        sent = transport.socket.send(data)
    except BlockingIOError:
        sent = 0
    except OSError as e:
        _lostBySend(transport, e)
        return
    if sent < len(data):
        transport.write(data[sent:])


def _lostBySend(transport: Any, e: OSError) -> None:
    """
    End C{transport}, whose C{send} failed with C{e}, as Twisted ends a
    connection whose own send fails: with L{ConnectionLost}, reading and
    writing no more, on the next turn (as C{abortConnection} does, and
    with its C{_aborting} flag, so that an abort meanwhile adds nothing).

    The kernel hands a socket's error (the peer's reset) to the one call
    that meets it, and this send did.  Given to C{transport.write} to meet
    again, it would be gone: the next send would say only EPIPE, and the
    read the reactor does first only an end of file, so that a reset was
    reported as a close (C{ConnectionDone}).
    """
    transport._aborting = True
    transport.stopReading()
    transport.stopWriting()
    transport.reactor.callLater(
        0, transport.connectionLost, Failure(ConnectionLost(e.strerror or str(e)))
    )


def pendingBytes(transport: ITransport) -> int | None:
    """
    How many bytes written to C{transport} it has not yet handed to the
    kernel, or L{None} when that cannot be known (any transport but Twisted's
    own TCP and UNIX-socket ones, or one whose buffer fields moved).

    A transport may report it through a public C{pendingBytes()} method of
    its own, as L{uppercase.testing.StreamTransport} does.
    """
    report = getattr(type(transport), "pendingBytes", None)
    if callable(report):
        return int(report(transport))
    if isinstance(transport, Connection) and _hasBufferFields(transport):
        return _pendingOf(transport)
    return None


def canHalfClose(transport: ITransport) -> bool:
    """
    Whether C{transport} can end its sending side alone (C{shutdown(SHUT_WR)}
    after what is buffered) and go on reading: TCP and UNIX-socket
    transports, and wrappers that provide the same interfaces, but never TLS,
    whose close is a C{close_notify} for both directions.
    """
    return (
        not ISSLTransport.providedBy(transport)
        and IHalfCloseableDescriptor.providedBy(transport)
        and ITCPTransport.providedBy(transport)
    )


def _fileMode(path: object) -> int | None:
    """
    The permission bits of the UNIX socket file at C{path}, or L{None} for
    an abstract or unnamed socket (or a file gone).
    """
    if not isinstance(path, str) or not path or path.startswith("\0"):
        return None
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None


def _sharedPortClass() -> Any:
    """
    A subclass of Twisted's UNIX port that leaves the socket's file alone
    when it closes, or L{None} if Twisted's port has changed shape.
    """
    try:
        from twisted.internet.unix import Port as UNIXPort
    except ImportError:  # pragma: no cover (no UNIX sockets)
        return None
    if not (
        callable(getattr(UNIXPort, "_fromListeningDescriptor", None))
        and issubclass(UNIXPort, TCPPort)
        and isinstance(getattr(TCPPort, "_shouldShutdown", None), bool)
        and callable(vars(TCPPort).get("connectionLost"))
    ):
        # Without any of these, the subclass below would not do what it
        # says (shutdown() would end the socket for every worker).
        return None

    class SharedUNIXPort(UNIXPort):
        """
        A UNIX port on a socket whose file another process owns.
        """

        # Close only this process's copy: shutdown() would end the socket
        # for every process that holds it (Twisted's TCP port does the same
        # for an adopted socket; its UNIX port does not).
        _shouldShutdown = False

        def connectionLost(self, reason: Any) -> None:
            # UNIXPort's removes the socket's file first; TCPPort's does the
            # rest (closes this process's copy of the socket).
            TCPPort.connectionLost(self, reason)

    return SharedUNIXPort


@implementer(IListeningPort)
class _ReadingStopped:
    """
    The fallback's port: stopping it stops accepting (the reactor no longer
    reads the socket) without closing it, which would remove its file.
    """

    def __init__(self, reactor: Any, port: Any) -> None:
        self._reactor = reactor
        self._port = port

    def startListening(self) -> None:
        pass

    def stopListening(self) -> Deferred[None]:
        self._reactor.removeReader(self._port)
        return succeed(None)

    def getHost(self) -> Any:
        return self._port.getHost()


def adoptSharedUNIXPort(
    reactor: Any, fd: int, factory: IProtocolFactory, path: str
) -> IListeningPort:
    """
    Listen on C{fd}, a listening, non-blocking UNIX socket bound to C{path}
    that another process owns (a worker's, made by its supervisor), as
    C{reactor.adoptStreamPort} would, but leaving the socket's file as it
    is: its mode unchanged at start, the file still there at stop.  C{fd}
    stays open (the port listens on a copy).
    """
    mode = _fileMode(path)
    shared = _sharedPortClass()
    if shared is not None:
        port = shared._fromListeningDescriptor(reactor, fd, factory)
        if mode is not None:
            port.mode = mode  # what startListening sets the file to
        port.startListening()
        # On PyPy the socket object Twisted made from the descriptor put it
        # in blocking mode (CPython's keep its mode), and O_NONBLOCK belongs
        # to the socket, shared by every copy: a blocking listening socket
        # would hold the reactor in accept() after each connection.
        os.set_blocking(port.fileno(), False)
        return port
    from twisted import __version__ as twistedVersion

    log.warn(
        "Twisted {twisted}'s UNIX port has changed: a worker sets the mode of its "
        "UNIX socket's file back after adopting it",
        twisted=twistedVersion,
    )
    adopted = reactor.adoptStreamPort(fd, socket.AF_UNIX, factory)
    if mode is not None:
        os.chmod(path, mode)
    return _ReadingStopped(reactor, adopted)
