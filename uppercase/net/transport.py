"""
The one place that knows Twisted's transports beyond their public interfaces.

Six things need more than the public API (the sixth, L{datagramSender},
is described with it):

  - B{Sending a reply at once} (L{writeDirectly}, chosen per connection by
    L{directWriter}).  Twisted's
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
  - B{A TLS half-close} (L{halfClosingTLS}): when a TLS peer sends its
    C{close_notify}, Twisted's TLS protocol sends its own at once and ends
    the connection, dropping every reply not yet written through (26.x and
    24.7 alike: the replies its small-write aggregator holds until the next
    reactor turn, or all of them while flow control holds them back).  TLS
    1.3 lets a server go on sending after the peer's C{close_notify}; the
    subclass tells the protocol it wraps, if that is half-closeable, that the
    peer has finished sending (C{readConnectionLost}, as a TCP FIN does), and
    its C{close_notify} follows the last reply when that protocol closes.
    It replaces Twisted's C{_flushReceiveBIO} (the same from 24.7 to 26.10),
    and uses C{_tlsConnection}, C{_lostTLSConnection}, C{_aborted},
    C{_flushSendBIO}, C{_shutdownTLS} and C{_tlsShutdownFinished}.

The first two read the buffer fields of Twisted's file-descriptor transports
(C{_tempDataLen}, C{dataBuffer}, C{offset}, C{_writeDisconnecting}, C{_aborting}), the same
from Twisted 24.7 to 26.10; the third sets their C{protocol} attribute.
L{_hasBufferFields} checks once per transport class that they are
there; if a future Twisted renames them, it logs one warning and everything
falls back to the public API (plain C{transport.write}; "pending bytes
unknown").  The fourth checks its pieces (C{_fromListeningDescriptor},
C{_shouldShutdown}, the TCP port's C{connectionLost}) before each use, and
falls back as said above.  The fifth checks its pieces once; without them,
Twisted's own TLS protocol is used, with one warning.  Nothing else in the package reads Twisted's
private attributes.

Other transports take part through the interfaces declared in
L{uppercase.net.interfaces}, never through methods looked up by name: one
that provides L{IPendingBytes} is asked for its pending bytes, one that
provides L{IDirectWrite} (the in-memory
L{StreamTransport<uppercase.testing.StreamTransport>}) writes with its own
C{writeDirectly}, and one that provides L{IDirectWriteTarget} (the PROXY
protocol's transport) is written through to the transport it stands for.

A TCP reset (L{resetConnection}) needs only public pieces (the socket from
C{getHandle}, through a TLS layer's or a PROXY transport's C{transport}).

Closing is decided by interfaces too (L{canHalfClose}, which lives with
them and is named here for the modules that import it from here).
"""

from __future__ import annotations

import os
import platform
import socket
import stat
import struct
from functools import cache
from types import MethodType
from typing import Any, Callable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IListeningPort,
    IProtocolFactory,
    ISSLTransport,
    ITransport,
)
from twisted.internet.tcp import Connection
from twisted.internet.tcp import Port as TCPPort
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import alsoProvides, implementer

from uppercase.net.interfaces import (
    IDirectWrite,
    IDirectWriteTarget,
    IPendingBytes,
    canHalfClose,
)

__all__ = [
    "DIRECT_LIMIT",
    "adoptSharedUNIXPort",
    "canHalfClose",
    "datagramSender",
    "directWriteTarget",
    "directWriter",
    "halfClosingTLS",
    "pendingBytes",
    "resetConnection",
    "readDatagramsInto",
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
    one it stands for (an L{IDirectWriteTarget}, as L{uppercase.proxy}'s
    transport for a connection behind a PROXY header is).
    """
    target: object = transport
    if not isinstance(target, Connection):
        standsFor = IDirectWriteTarget(transport, None)
        target = standsFor.directWriteTarget() if standsFor is not None else None
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


def directWriter(transport: ITransport) -> Callable[[bytes], None]:
    """
    The quickest correct way to write to C{transport}, for a protocol to
    choose once, in C{connectionMade}: L{writeDirectly} to its
    L{directWriteTarget} if it has one, its own C{writeDirectly} if it
    provides L{IDirectWrite}, or else its C{write}.  All three keep the
    bytes' order, flow control and half-close.
    """
    target = directWriteTarget(transport)
    if target is not None:
        # writeDirectly bound to the target: called from Python, CPython runs
        # it as a plain Python call (a functools.partial, called from C,
        # cost 35 ns more per chunk, a sixth of the echo's own work).
        return MethodType(writeDirectly, target)
    direct = IDirectWrite(transport, None)
    if direct is not None:
        return direct.writeDirectly
    return transport.write


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

    A transport that provides L{IPendingBytes} (as
    L{uppercase.testing.StreamTransport} and the PROXY protocol's transports
    do) says it itself.
    """
    report = IPendingBytes(transport, None)
    if report is not None:
        return report.pendingBytes()
    if isinstance(transport, Connection) and _hasBufferFields(transport):
        return _pendingOf(transport)
    return None


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


TLS_PIECES = (
    "_flushReceiveBIO",
    "_flushSendBIO",
    "_shutdownTLS",
    "_tlsShutdownFinished",
    "_lostTLSConnection",
    "_aborted",
)
"""The attributes of Twisted's TLS protocol class that L{halfClosingTLS}
uses (C{_tlsConnection} is set per connection, in C{makeConnection})."""


@cache
def halfClosingTLS() -> Any:
    """
    The TLS protocol class for server-side TLS factories: Twisted's
    (C{TLSMemoryBIOFactory.protocol}), except that the peer's C{close_notify}
    is a half-close for a protocol that provides C{IHalfCloseableProtocol}
    (see the module docstring); or Twisted's own, with one warning, if its
    pieces have moved.  (Made on first use: Twisted's TLS needs pyOpenSSL.)
    """
    from OpenSSL.SSL import Error, WantReadError, ZeroReturnError
    from twisted.protocols.policies import ProtocolWrapper
    from twisted.protocols.tls import TLSMemoryBIOFactory

    base: Any = TLSMemoryBIOFactory.protocol
    missing = [name for name in TLS_PIECES if not hasattr(base, name)]
    if missing:
        from twisted import __version__ as twistedVersion

        log.warn(
            "Twisted {twisted}'s TLS has no {missing}: a TLS client's close_notify "
            "still ends its connection at once, and replies not yet sent are lost",
            twisted=twistedVersion,
            missing=", ".join(missing),
        )
        return base

    class HalfClosingTLS(base):
        """
        Twisted's TLS protocol with the peer's C{close_notify} as a
        half-close.

        @ivar peerEnded: whether the peer's C{close_notify} was passed on
            as a half-close; nothing is read after it.
        """

        peerEnded = False

        def _flushReceiveBIO(self) -> None:
            # Twisted's loop, but for the close_notify.
            while not self._lostTLSConnection and not self.peerEnded:
                try:
                    data = self._tlsConnection.recv(2**15)
                except WantReadError:
                    break
                except ZeroReturnError:
                    if self.disconnecting or not IHalfCloseableProtocol.providedBy(
                        self.wrappedProtocol
                    ):
                        # Closing already (the close_notify answers ours),
                        # or nothing to tell: as Twisted does.
                        self._shutdownTLS()
                        self._tlsShutdownFinished(None)
                    else:
                        self.peerEnded = True
                        # A TCP FIN after the close_notify must not end the
                        # connection before the replies are out.
                        alsoProvides(self, IHalfCloseableProtocol)
                        self.wrappedProtocol.readConnectionLost()
                except Error:
                    self._tlsShutdownFinished(Failure())
                else:
                    if not self._aborted:
                        ProtocolWrapper.dataReceived(self, data)
            self._flushSendBIO()

        def readConnectionLost(self) -> None:
            """
            The TCP stream ended after the peer's C{close_notify} (only then
            is this protocol half-closeable): the connection closes when
            the protocol it wraps closes it.
            """

        def writeConnectionLost(self) -> None:
            """
            Never called: TLS never half-closes its TCP stream.
            """

    return HalfClosingTLS


def resetConnection(transport: Any) -> bool:
    """
    End C{transport}'s connection with a TCP reset (RST) at once: C{SO_LINGER}
    set to zero on its socket, then C{abortConnection}, whose close of the
    socket then sends the reset and drops what the kernel still holds.  The
    socket is found through public C{getHandle}, looking through a TLS
    layer's or a PROXY transport's C{transport}; for anything else (a UNIX
    socket, an in-memory transport) it is a plain abort.

    @return: whether the reset was set up (otherwise a plain abort).
    """
    reset = False
    candidate: Any = transport
    for _ in range(3):
        if candidate is None:
            break
        getHandle = getattr(candidate, "getHandle", None)
        handle = None
        if getHandle is not None:
            try:
                handle = getHandle()
            except Exception:
                handle = None
        if isinstance(handle, socket.socket):
            if handle.family in (socket.AF_INET, socket.AF_INET6):
                try:
                    handle.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    reset = True
                except OSError:
                    pass
            break
        candidate = getattr(candidate, "transport", None)
    transport.abortConnection()
    return reset


DATAGRAM_FIELDS = ("socket", "_connectedAddr")
"""The attributes of Twisted's UDP port that L{datagramSender} reads."""

_checkedDatagram: dict[type, bool] = {}
"""Per UDP port class: whether it has L{DATAGRAM_FIELDS}."""


def datagramSender(transport: Any) -> Callable[[bytes, Any], object]:
    """
    The quickest correct way to send a datagram to an address that
    C{recvfrom} gave (a reply to its sender), for a datagram protocol to
    choose once per port: the C{sendto} of the socket of Twisted's own UDP
    port when that port is not connected, or else C{transport.write}.

    Twisted's C{udp.Port.write} first checks that the address is an IP
    address of the port's family (C{isIPAddress} twice and
    C{isIPv6Address}, each an C{inet_pton} in a C{try}, the IPv6 one
    raising for an IPv4 address): an address C{recvfrom} gave always is, and
    those checks were a seventh of the UDP echo's time.  What the kernel
    says stays as C{Port.write} has it: C{EINTR} is retried (by Python
    itself, PEP 475), C{ECONNREFUSED} raises L{ConnectionRefusedError}
    (which C{Port.write} ignores: a caller that counts must do the same),
    and every other error, C{EMSGSIZE} included (C{Port.write}'s
    L{twisted.internet.error.MessageLengthError}), raises the L{OSError}.

    If Twisted's port keeps its socket elsewhere (a future Twisted), one
    warning, and C{transport.write}.
    """
    from twisted.internet.udp import Port as UDPPort

    if not isinstance(transport, UDPPort):
        return transport.write
    kind = type(transport)
    known = _checkedDatagram.get(kind)
    if known is None:
        missing = [name for name in DATAGRAM_FIELDS if not hasattr(transport, name)]
        if not missing and not callable(getattr(transport.socket, "sendto", None)):
            missing = ["socket.sendto"]
        known = _checkedDatagram[kind] = not missing
        if missing:
            from twisted import __version__ as twistedVersion

            log.warn(
                "Twisted {twisted}'s {transport} has no {missing}: datagrams go through "
                "transport.write (correct, somewhat slower)",
                twisted=twistedVersion,
                transport=f"{kind.__module__}.{kind.__qualname__}",
                missing=", ".join(missing),
            )
    if not known or transport._connectedAddr is not None:
        return transport.write
    sendto: Callable[[bytes, Any], object] = transport.socket.sendto
    return sendto


READ_INTO_FIELDS = (
    "socket",
    "protocol",
    "maxPacketSize",
    "maxThroughput",
    "addressFamily",
    "_connectedAddr",
)
"""The attributes of Twisted's UDP port that L{readDatagramsInto} reads
(and the module's C{_sockErrReadIgnore} and C{_sockErrReadRefuse})."""

_readIntoWarned: set[type] = set()
"""The UDP port classes L{readDatagramsInto} has warned of."""

READ_INTO_DEFAULT = platform.python_implementation() == "PyPy"
"""Whether L{readDatagramsInto} replaces Twisted's reading unless told:
on PyPy only.  Reading queued 512-byte datagrams (C{benchmarks/udp_micro.py}),
PyPy's C{recvfrom(65536)} took 1,400 ns a datagram and C{recvfrom_into} a
reused buffer, with the copy, 750 ns; CPython's C{recvfrom} took 630 ns and
the other way 760 ns: CPython keeps Twisted's."""


def readDatagramsInto(port: Any, enable: bool = READ_INTO_DEFAULT) -> bool:
    """
    Make Twisted's UDP port C{port} read each datagram into one buffer of
    its C{maxPacketSize} bytes, reused, and hand its protocol a copy of the
    bytes read, where Twisted's C{Port.doRead} has C{recvfrom} allocate that
    many bytes for every datagram.  Everything else is Twisted's loop as it
    is (from 24.7 to 26.10): as many datagrams as C{maxThroughput} bytes a
    readiness event, a datagram larger than the buffer cut to it, IPv6
    addresses as (host, port), the same errors ignored or told to the
    protocol as a refusal, and an exception from the protocol logged, the
    loop going on.

    @param enable: whether to do it (by default, on PyPy only: see
        L{READ_INTO_DEFAULT}).
    @return: whether it was done; if not (disabled, not Twisted's UDP port,
        or, with one warning, a port or module that has changed shape),
        Twisted reads as it always did.
    """
    from twisted.internet import udp

    if not enable or not isinstance(port, udp.Port):
        return False
    missing = [name for name in READ_INTO_FIELDS if not hasattr(port, name)]
    missing += [
        name for name in ("_sockErrReadIgnore", "_sockErrReadRefuse") if not hasattr(udp, name)
    ]
    if missing:
        from twisted import __version__ as twistedVersion

        if type(port) not in _readIntoWarned:
            _readIntoWarned.add(type(port))
            log.warn(
                "Twisted {twisted}'s UDP port has no {missing}: it reads datagrams "
                "its own way (correct, somewhat slower on PyPy)",
                twisted=twistedVersion,
                missing=", ".join(missing),
            )
        return False
    ignore = frozenset(udp._sockErrReadIgnore)
    refuse = frozenset(udp._sockErrReadRefuse)
    buffer = bytearray(port.maxPacketSize)
    view = memoryview(buffer)

    def doRead() -> None:
        # Twisted's Port.doRead, with recvfrom_into the reused buffer.
        receive = port.socket.recvfrom_into
        protocol = port.protocol
        trim = port.addressFamily == socket.AF_INET6
        limit = port.maxThroughput
        read = 0
        while read < limit:
            try:
                size, addr = receive(buffer)
            except OSError as e:
                if e.args[0] in ignore:
                    return
                if e.args[0] in refuse:
                    if port._connectedAddr:
                        protocol.connectionRefused()
                    return
                raise
            read += size
            if trim:
                addr = addr[:2]
            try:
                protocol.datagramReceived(view[:size].tobytes(), addr)
            except BaseException:
                log.failure("Unhandled error in {protocol}.datagramReceived", protocol=protocol)

    port.doRead = doRead  # type: ignore[method-assign]
    return True
