r"""
The server's UDP side: C{udp:} endpoint strings (Twisted has no UDP server
endpoint), the echo's limits and counts for the whole server
(L{DatagramServer}), its log summarised per source per second
(L{SourceLog}), and a listener service that binds a port
(C{reactor.listenUDP}) or adopts a socket passed in (a worker's, or
systemd's C{ListenDatagram=}) with C{reactor.adoptDatagramPort}.

C{udp:9527} listens on every IPv4 address, C{udp:9527:interface=127.0.0.1}
on one, C{udp:port=9527:interface=\:\:1} on IPv6 (colons escaped, as in
C{tcp:} strings).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

from twisted.application.service import Service
from twisted.internet import abstract
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IListeningPort, IReactorTime
from twisted.logger import Logger

from uppercase.echo._datagram import (
    RECEIVE_BUFFER,
    DatagramAdmission,
    DatagramCounts,
    DatagramEcho,
)
from uppercase.net.endpoints import arguments, escapeBrackets, fields
from uppercase.net.peer import formatPeer, unmapped
from uppercase.net.transport import datagramSender, readDatagramsInto

__all__ = [
    "LINES_PER_SECOND",
    "UDP_PREFIX",
    "DatagramListener",
    "DatagramServer",
    "SourceLog",
    "UDPAddress",
    "datagramSocket",
    "isUDP",
    "parseUDP",
]

log = Logger(namespace="uppercase.udp")

UDP_PREFIX = "udp"
"""The endpoint type of a UDP listener."""

LINES_PER_SECOND = 20
"""Sources a second that get a log line of their own; the rest of that
second's sources are summed in one line."""

REASON_WORDS = {
    "too-large": "too large",
    "source-rate": "over the per-source rate",
    "global-rate": "over the global rate",
    "send-failed": "reply refused by the kernel",
    "unreadable": "unreadable",
}
"""Each drop reason as a log line says it."""


@dataclass(frozen=True)
class UDPAddress:
    """
    Where a C{udp:} endpoint listens.
    """

    port: int
    interface: str = ""

    @property
    def family(self) -> int:
        return socket.AF_INET6 if ":" in self.interface else socket.AF_INET


def isUDP(description: str) -> bool:
    """
    Whether C{description} is a C{udp:} endpoint string.
    """
    return fields(description)[0].lower() == UDP_PREFIX


def parseUDP(description: str) -> UDPAddress:
    r"""
    Read a C{udp:PORT[:interface=ADDR]} endpoint string (also
    C{udp:port=PORT}); an IPv6 address has its colons escaped
    (C{interface=\:\:1}) or is bracketed (C{interface=[::1]}).

    @raise ValueError: saying what is wrong, in a few words.
    """
    args, kwargs = arguments(escapeBrackets(description))
    if not args or args[0].lower() != UDP_PREFIX:
        raise ValueError("not a udp: endpoint")
    positional = args[1:]
    unknown = sorted(set(kwargs) - {"port", "interface"})
    if unknown:
        raise ValueError(f"udp: takes port and interface, not {unknown[0]}")
    if "port" in kwargs:
        positional = [kwargs.pop("port"), *positional]
    if len(positional) != 1:
        raise ValueError("udp: takes one port (udp:PORT[:interface=ADDRESS])")
    text = positional[0].strip()
    if not text.isdigit() or not text.isascii() or not 0 <= int(text) <= 65535:
        raise ValueError(f"the port must be a number from 0 to 65535, not {positional[0]!r}")
    interface = kwargs.get("interface", "")
    if interface and not (abstract.isIPAddress(interface) or abstract.isIPv6Address(interface)):
        raise ValueError(f"the interface must be an IPv4 or IPv6 address, not {interface!r}")
    return UDPAddress(int(text), interface)


def datagramSocket(fd: int) -> bool:
    """
    Whether descriptor C{fd} is a datagram socket (one systemd passed for
    C{ListenDatagram=}, or a worker's UDP socket).
    """
    try:
        blocking = os.get_blocking(fd)
        probe = socket.socket(fileno=fd)
    except OSError:
        return False
    try:
        return probe.type == socket.SOCK_DGRAM
    finally:
        probe.detach()
        # PyPy's socket(fileno=) makes the descriptor blocking: a listening
        # socket left so blocks its reactor in accept() once the queue is
        # empty (every connection to that worker then times out).
        os.set_blocking(fd, blocking)


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word if count == 1 else word + 's'}"


def _drops(drops: dict[str, int]) -> str:
    return ", ".join(f"{count:,} {REASON_WORDS[r]}" for r, count in drops.items() if count)


class _Tally:
    __slots__ = ("received", "receivedBytes", "sent", "drops")

    def __init__(self) -> None:
        self.received = 0
        self.receivedBytes = 0
        self.sent = 0
        self.drops: dict[str, int] = {}


class SourceLog:
    """
    The UDP log: once a second, one line per source (host and port) that
    sent in that second, with its counts, for at most C{limit} sources;
    the other sources of that second are summed in one line.  Quiet, no
    per-source lines: one line a second only when datagrams were dropped.

    Memory and log volume are bounded however many sources send: at most
    C{limit} tallies, and C{limit} + 1 lines a second.  A timer runs only
    in seconds with traffic.
    """

    def __init__(self, clock: IReactorTime, quiet: bool = False, limit: int = LINES_PER_SECOND):
        self._clock = clock
        self.quiet = quiet
        self.limit = limit
        self._sources: dict[Any, _Tally] = {}
        self._others = _Tally()
        self._call: Any = None

    def __call__(self, addr: Any, size: int, reason: str | None) -> None:
        """
        Tally one datagram from C{addr} of C{size} bytes, dropped for
        C{reason} (or echoed, if L{None}).
        """
        if self._call is None:
            self._call = self._clock.callLater(1.0, self.flush)
        if self.quiet:
            if reason is None:
                return
            tally = self._others
        else:
            key = addr if isinstance(addr, tuple) else repr(addr)
            tally = self._sources.get(key)  # type: ignore[assignment]
            if tally is None:
                if len(self._sources) < self.limit:
                    tally = self._sources[key] = _Tally()
                else:
                    tally = self._others
        tally.received += 1
        tally.receivedBytes += size
        if reason is None:
            tally.sent += 1
        else:
            tally.drops[reason] = tally.drops.get(reason, 0) + 1

    def flush(self) -> None:
        """
        Log the second's lines now, and forget them.
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        for addr, tally in self._sources.items():
            host, port = (unmapped(str(addr[0])), addr[1]) if len(addr) >= 2 else (addr, None)
            self._line(formatPeer(host, port), tally)
        others = self._others
        if others.received:
            if self.quiet:
                log.warn(
                    "UDP: dropped {dropped} in the last second ({drops})",
                    dropped=_plural(sum(others.drops.values()), "datagram"),
                    drops=_drops(others.drops),
                )
            else:
                self._line("other sources", others)
        self._sources = {}
        self._others = _Tally()

    def _line(self, source: str, tally: _Tally) -> None:
        dropped = sum(tally.drops.values())
        log.info(
            "UDP {source}: {received} ({size}) in the last second, {sent} echoed{dropped}",
            source=source,
            received=_plural(tally.received, "datagram"),
            size=_plural(tally.receivedBytes, "byte"),
            sent=f"{tally.sent:,}",
            dropped=f", {dropped:,} dropped ({_drops(tally.drops)})" if dropped else "",
            datagrams=tally.received,
            bytes=tally.receivedBytes,
            echoed=tally.sent,
            drops=dict(tally.drops),
        )


class DatagramServer:
    """
    The echo over UDP for a whole server: one admission (so the rates are
    the server's, whichever port a datagram reaches), one set of counts
    (read by the metrics and by a worker's reports), and one log.

    @param perSource: most datagrams a second from one host (0: unlimited).
    @param bytesPerSource: most bytes a second from one host (0: unlimited).
    @param total: most datagrams a second in all (0: unlimited).
    @param plain: echo unchanged (RFC 862), not uppercased.
    @param logData: log per-source lines (not C{--quiet}).
    """

    def __init__(
        self,
        clock: IReactorTime,
        *,
        perSource: float = 0,
        bytesPerSource: float = 0,
        total: float = 0,
        plain: bool = False,
        logData: bool = True,
    ) -> None:
        self.counts = DatagramCounts()
        self.admission = DatagramAdmission(clock, perSource, bytesPerSource, total)
        self.log = SourceLog(clock, quiet=not logData)
        self.plain = plain

    def buildProtocol(self) -> DatagramEcho:
        """
        An echo for one port.
        """
        return DatagramEcho(
            self.admission,
            self.counts,
            self.plain,
            self.log,
            observeDropsOnly=self.log.quiet,
            chooseSend=datagramSender,
        )


class DatagramListener(Service):
    """
    A UDP port serving C{server}'s echo: bound to C{address}, or adopted
    from descriptor C{fd} (which it leaves open: the caller's).

    @ivar port: the listening port, while running.
    """

    def __init__(
        self,
        server: DatagramServer,
        reactor: Any,
        address: UDPAddress | None = None,
        fd: int | None = None,
    ) -> None:
        if (address is None) == (fd is None):
            raise ValueError("an address or a descriptor, not both")
        self.server = server
        self._reactor = reactor
        self.address = address
        self.fd = fd
        self.port: IListeningPort | None = None

    def privilegedStartService(self) -> None:
        if self.port is None:
            self.port = self._listen()
        super().privilegedStartService()

    def startService(self) -> None:
        if self.port is None:
            self.port = self._listen()
        super().startService()

    def _listen(self) -> IListeningPort:
        protocol = self.server.buildProtocol()
        if self.fd is not None:
            probe = socket.socket(fileno=self.fd)
            family = probe.family
            probe.detach()
            os.set_blocking(self.fd, False)  # after the probe (PyPy's makes it blocking)
            port = self._reactor.adoptDatagramPort(self.fd, family, protocol, RECEIVE_BUFFER)
        else:
            assert self.address is not None
            port = self._reactor.listenUDP(
                self.address.port, protocol, self.address.interface, RECEIVE_BUFFER
            )
        readDatagramsInto(port)  # on PyPy, measured quicker
        return port

    def stopService(self) -> Deferred[None]:
        super().stopService()
        port, self.port = self.port, None
        self.server.log.flush()
        if port is None:
            return succeed(None)
        stopped: Deferred[None] = maybeDeferred(port.stopListening)  # type: ignore[call-overload]
        return stopped
