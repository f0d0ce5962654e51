"""
The client over UDP: C{udp:HOST:PORT} endpoint strings (L{parseUDP}),
opening a connected UDP socket (L{openDatagram}), and the ping-like client
(L{DatagramPing}): a thin Twisted adapter over the sans-IO
L{uppercase.client._datagram.DatagramTracker}.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Callable, Tuple

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import DatagramProtocol

from uppercase._settings import wholeNumber
from uppercase.client._datagram import (
    ANSWER,
    CORRUPTED,
    FOREIGN,
    HEADER_SIZE,
    Arrival,
    DatagramTracker,
    encode,
)
from uppercase.client._report import counted
from uppercase.client._verifier import Mismatch, echoHint, hexExcerpt
from uppercase.net.endpoints import arguments, escapeBrackets

__all__ = [
    "DatagramPing",
    "UDPRefused",
    "describeArrival",
    "isDatagram",
    "openDatagram",
    "parseUDP",
]

FORMS = "write udp:HOST:PORT, or udp:[::1]:PORT for IPv6"


def isDatagram(description: str) -> bool:
    """
    Whether C{description} is a C{udp:} endpoint string.
    """
    return description.split(":", 1)[0].strip().lower() == "udp"


def parseUDP(description: str) -> Tuple[str, int]:
    """
    The host and port of C{udp:HOST:PORT}, C{udp:[::1]:PORT} or
    C{udp:host=HOST:port=PORT}.

    @raise ValueError: saying what is wrong, in one line.
    """
    args, kwargs = arguments(escapeBrackets(description))
    positional = args[1:]
    unknown = set(kwargs) - {"host", "port"}
    if unknown:
        raise ValueError(f"udp: takes a host and a port, not {', '.join(sorted(unknown))}")
    host = kwargs.get("host")
    port = kwargs.get("port")
    for value in positional:
        if host is None:
            host = value
        elif port is None:
            port = value
        else:
            raise ValueError(f"an IPv6 address needs brackets: {FORMS}")
    if not host or port is None:
        raise ValueError(f"udp: needs a host and a port: {FORMS}")
    try:
        number = wholeNumber(port)
    except ValueError:
        number = 0
    if not 1 <= number <= 65535:
        raise ValueError(f"port must be from 1 to 65535, not {port!r}")
    return host, number


class UDPRefused(Exception):
    """
    The host said nothing listens on the port (ICMP port unreachable).
    """

    def __str__(self) -> str:
        return "Connection refused"


def openDatagram(reactor: Any, description: str, protocol: DatagramProtocol) -> Deferred[Any]:
    """
    Open a UDP socket for C{protocol} on an ephemeral port, connected to
    C{description}'s host (its name resolved first) and port.

    @return: fires with the listening port; fails if the name does not
        resolve or the socket cannot be opened.
    """
    host, port = parseUDP(description)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        resolving: Deferred[str] = reactor.resolve(host)
    else:
        resolving = succeed(str(address))

    def open(ip: str) -> Any:
        interface = "::" if ":" in ip else ""
        listening = reactor.listenUDP(0, protocol, interface=interface)
        listening.connect(ip, port)
        return listening

    return resolving.addCallback(open)


def describeArrival(arrival: Arrival, socket: int, expected: bytes, plain: bool = False) -> str:
    """
    What was wrong with a corrupted reply, as the verifier says it, with
    the verifier's hint when it looks like the other echo's (C{plain}: the
    replies expected unchanged).
    """
    received = arrival.payload
    index = next(
        (i for i, (a, b) in enumerate(zip(expected, received)) if a != b),
        min(len(expected), len(received)),
    )
    mismatch = Mismatch.around(
        connection=socket,
        message=arrival.sequence,
        offset=HEADER_SIZE + index,
        messageOffset=HEADER_SIZE + index,
        expected=expected,
        received=received,
        index=index,
    )
    hint = echoHint(mismatch, plain)
    return f"reply {arrival.sequence} does not match at {mismatch.detail()}{hint}"


ReplyCallback = Callable[[int, bytes, float], None]


def _ignore(sequence: int, reply: bytes, rtt: float) -> None:
    pass


class DatagramPing(DatagramProtocol):
    """
    Send C{message} + C{\\n} in a datagram C{count} times (0: forever),
    C{interval} seconds apart, whatever comes back, and account for each
    reply (L{DatagramTracker}); done once every datagram is answered or
    lost.

    @ivar tracker: the counts.
    @ivar done: fires with L{None} once over (L{failure} says whether it
        went well).
    @ivar failure: why the run failed, in one line, or L{None}.
    """

    noisy = False  # no "Starting protocol <...>" log line

    transport: Any
    """A connected UDP port (C{write(datagram)}, C{stopListening})."""

    def __init__(
        self,
        message: bytes,
        *,
        count: int,
        interval: float,
        timeout: float,
        clock: IReactorTime,
        onReply: ReplyCallback = _ignore,
        plain: bool = False,
    ) -> None:
        self._payload = message + b"\n"
        self._expected = self._payload if plain else self._payload.upper()
        self._plain = plain
        self.count = count
        self.interval = interval
        self._clock = clock
        self._onReply = onReply
        self.tracker = DatagramTracker(1, timeout, lambda sequence: self._expected)
        self.done: Deferred[None] = Deferred()
        self.failure: str | None = None
        self._firstWrong: str | None = None
        self._sendTimer: IDelayedCall | None = None
        self._expiryTimer: IDelayedCall | None = None
        self._sending = False
        self._over = False
        self._closed = False

    def begin(self) -> None:
        """
        The socket is connected: start sending.
        """
        self._sending = True
        self._send()

    def _send(self) -> None:
        self._sendTimer = None
        tracker = self.tracker
        sequence = tracker.send(self._clock.seconds())
        self.transport.write(encode(1, sequence, self._payload))
        if self._over:
            return  # refused (ICMP port unreachable) at once
        if self.count and tracker.counts.sent >= self.count:
            self._sending = False
        else:
            self._sendTimer = self._clock.callLater(self.interval, self._send)
        self._armExpiry()
        self._maybeOver()

    def _armExpiry(self) -> None:
        deadline = self.tracker.nextDeadline
        if self._expiryTimer is not None or deadline is None:
            return
        delay = max(deadline - self._clock.seconds(), 0.0)
        self._expiryTimer = self._clock.callLater(delay, self._expire)

    def _expire(self) -> None:
        self._expiryTimer = None
        self.tracker.expire(self._clock.seconds())
        self._armExpiry()
        self._maybeOver()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        if self._over:
            return
        now = self._clock.seconds()
        arrival = self.tracker.receive(datagram, now)
        if arrival.kind == ANSWER:
            self._onReply(arrival.sequence, arrival.payload, now - arrival.stamp)
        elif arrival.kind == CORRUPTED and self._firstWrong is None:
            self._firstWrong = describeArrival(arrival, 1, self._expected, self._plain)
        elif arrival.kind == FOREIGN and self._firstWrong is None:
            excerpt = datagram[:HEADER_SIZE]
            self._firstWrong = f"a datagram with no header of ours: {hexExcerpt(excerpt)}"
        self._maybeOver()

    def connectionRefused(self) -> None:
        """
        ICMP port unreachable: nothing listens there; what is in flight is
        lost.
        """
        if not self._over:
            self.tracker.expireAll()
            self._end("Connection refused")

    def stopProtocol(self) -> None:
        """
        The socket closed: if the run did not close it, an error was
        pending on it (Twisted's epoll reactor closes a UDP socket on an
        ICMP error instead of calling L{connectionRefused}).
        """
        self._closed = True
        if not self._over:
            self.connectionRefused()

    def _maybeOver(self) -> None:
        if not self._sending and not self.tracker.inFlight and not self._over:
            self._end(None)

    def stop(self) -> None:
        """
        End now (a signal): send nothing more, wait for nothing more.
        """
        if not self._over:
            self._end(None)

    def _end(self, failure: str | None) -> None:
        self._over = True
        self._sending = False
        for timer in (self._sendTimer, self._expiryTimer):
            if timer is not None and timer.active():
                timer.cancel()
        self._sendTimer = self._expiryTimer = None
        counts = self.tracker.counts
        if failure is None and self._firstWrong is not None:
            failure = self._firstWrong
        if failure is None and counts.lost:
            percent = counts.lossPercent() or 0.0
            failure = f"{counts.lost:,} of {counted(counts.sent, 'datagram')} lost ({percent:.1f}%)"
        self.failure = failure
        if not self._closed and self.transport is not None:
            self._closed = True
            self.transport.stopListening()
        self.done.callback(None)
