"""
The datagram echo: each datagram sent back to its sender, ASCII-uppercased
(or unchanged when plain), within bounds.

The decisions are pure and take the time as an argument (L{TokenBucket},
L{DatagramAdmission}); L{DatagramEcho} is the thin Twisted adapter over
them, for C{reactor.listenUDP} or C{reactor.adoptDatagramPort}:

    >>> from twisted.internet import task
    >>> echo = DatagramEcho(DatagramAdmission(task.Clock()), DatagramCounts())

Nothing is ever buffered: a datagram that may not be echoed, or whose reply
the kernel does not take at once (C{EAGAIN}, C{ENOBUFS}), is dropped and
counted by its reason (L{DROP_REASONS}); whatever else raises while one
datagram is handled drops that datagram (C{unreadable}), never the port.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Dict, Mapping, Tuple

from twisted.internet.error import MessageLengthError
from twisted.internet.interfaces import IReactorTime, IUDPTransport
from twisted.internet.protocol import DatagramProtocol

__all__ = [
    "COUNT_NAMES",
    "DROP_REASONS",
    "GLOBAL_RATE",
    "MAX_DATAGRAM",
    "MAX_SOURCES",
    "SEND_FAILED",
    "SOURCE_RATE",
    "TOO_LARGE",
    "UNREADABLE",
    "DatagramAdmission",
    "DatagramCounts",
    "DatagramEcho",
    "TokenBucket",
]

MAX_DATAGRAM = 65507
"""The largest datagram echoed: the most a UDP datagram over IPv4 can carry
(65,535 less the IPv4 and UDP headers).  A larger one (IPv6 allows 65,527
bytes) is dropped as C{too-large}: its reply could not reach every peer."""

RECEIVE_BUFFER = 65536
"""Bytes read per datagram: more than any datagram echoed, so that one too
large is seen whole and dropped as such, never echoed truncated."""

MAX_SOURCES = 4096
"""Most sources whose per-source rate is tracked at once; past that the
one seen least recently is forgotten, so a flood from spoofed sources
cannot grow the table (a forgotten source starts again with a full
bucket: the global rate still bounds the whole)."""

TOO_LARGE = "too-large"
"""Dropped: over L{MAX_DATAGRAM} bytes."""

SOURCE_RATE = "source-rate"
"""Dropped: its source was over the per-source rate."""

GLOBAL_RATE = "global-rate"
"""Dropped: the server was over its global rate."""

SEND_FAILED = "send-failed"
"""Dropped: the kernel refused the reply (C{EAGAIN}, C{ENOBUFS}, ...)."""

UNREADABLE = "unreadable"
"""Dropped: handling it raised (something the kernel delivered oddly)."""

DROP_REASONS = (TOO_LARGE, SOURCE_RATE, GLOBAL_RATE, SEND_FAILED, UNREADABLE)
"""Why a datagram is dropped, as the logs and metrics name it."""

COUNT_NAMES = ("received", "receivedBytes", "sent", "sentBytes") + tuple(
    f"dropped:{reason}" for reason in DROP_REASONS
)
"""The name of each of L{DatagramCounts}' counts (see L{DatagramCounts.asDict})."""

Address = Tuple[Any, ...]


class TokenBucket:
    """
    A rate of C{rate} units a second, with a burst of one second's worth:
    L{take} says whether C{amount} units may pass at time C{now}.
    """

    __slots__ = ("rate", "tokens", "stamp")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.stamp = now

    def take(self, amount: float, now: float) -> bool:
        """
        Take C{amount} units at C{now} if the bucket holds them.
        """
        tokens = self.tokens + (now - self.stamp) * self.rate
        if tokens > self.rate:
            tokens = self.rate
        self.stamp = now
        if tokens >= amount:
            self.tokens = tokens - amount
            return True
        self.tokens = tokens
        return False


class DatagramCounts:
    """
    What the datagram echo counted: datagrams and bytes received and sent,
    and datagrams dropped, by reason (one of L{DROP_REASONS}).
    """

    def __init__(self) -> None:
        self.received = 0
        self.receivedBytes = 0
        self.sent = 0
        self.sentBytes = 0
        self.dropped: Dict[str, int] = dict.fromkeys(DROP_REASONS, 0)

    @classmethod
    def fromDict(cls, counts: Mapping[str, int]) -> DatagramCounts:
        """
        The counts C{counts} names (as L{asDict} names them; 0 for those
        it lacks).
        """
        made = cls()
        made.received = counts.get("received", 0)
        made.receivedBytes = counts.get("receivedBytes", 0)
        made.sent = counts.get("sent", 0)
        made.sentBytes = counts.get("sentBytes", 0)
        for reason in DROP_REASONS:
            made.dropped[reason] = counts.get(f"dropped:{reason}", 0)
        return made

    def asDict(self) -> dict[str, int]:
        """
        Every count by one name (C{"dropped:too-large"} for a reason's).
        """
        counts = {
            "received": self.received,
            "receivedBytes": self.receivedBytes,
            "sent": self.sent,
            "sentBytes": self.sentBytes,
        }
        for reason, count in self.dropped.items():
            counts[f"dropped:{reason}"] = count
        return counts


class DatagramAdmission:
    """
    Whether a datagram may be echoed: at most L{MAX_DATAGRAM} bytes, its
    source host within C{perSource} datagrams and C{bytesPerSource} bytes a
    second, the whole within C{total} datagrams a second (each 0 for
    unlimited).  Sources are hosts, not ports: a reflection's victim is an
    address.  At most C{maxSources} are tracked (see L{MAX_SOURCES}).

    @param clock: where the time comes from (read once per datagram, and
        only when a rate is limited).
    """

    def __init__(
        self,
        clock: IReactorTime,
        perSource: float = 0,
        bytesPerSource: float = 0,
        total: float = 0,
        maxSources: int = MAX_SOURCES,
    ) -> None:
        self._clock = clock
        self.perSource = perSource
        self.bytesPerSource = bytesPerSource
        self.maxSources = maxSources
        self._global = TokenBucket(total, clock.seconds()) if total else None
        self._limited = bool(perSource or bytesPerSource or total)
        self._sources: OrderedDict[str, tuple[TokenBucket | None, TokenBucket | None]] = (
            OrderedDict()
        )

    @property
    def limited(self) -> bool:
        """Whether any rate is limited (if not, L{check} checks the size only)."""
        return self._limited

    @property
    def sources(self) -> int:
        """How many sources are tracked now."""
        return len(self._sources)

    def check(self, host: str, size: int) -> str | None:
        """
        The reason to drop a datagram of C{size} bytes from C{host} now, or
        L{None} to echo it (which takes it from the rates).
        """
        if size > MAX_DATAGRAM:
            return TOO_LARGE
        if not self._limited:
            return None
        now = self._clock.seconds()
        if self.perSource or self.bytesPerSource:
            sources = self._sources
            buckets = sources.get(host)
            if buckets is None:
                if len(sources) >= self.maxSources:
                    sources.popitem(last=False)
                buckets = (
                    TokenBucket(self.perSource, now) if self.perSource else None,
                    TokenBucket(self.bytesPerSource, now) if self.bytesPerSource else None,
                )
                sources[host] = buckets
            else:
                sources.move_to_end(host)
            count, volume = buckets
            if count is not None and not count.take(1, now):
                return SOURCE_RATE
            if volume is not None and not volume.take(size, now):
                return SOURCE_RATE
        if self._global is not None and not self._global.take(1, now):
            return GLOBAL_RATE
        return None


def upper(data: bytes) -> bytes:
    """ASCII C{a}-C{z} as C{A}-C{Z}, every other byte unchanged."""
    return data.upper()


def unchanged(data: bytes) -> bytes:
    """The datagram as it came (RFC 862)."""
    return data


class DatagramEcho(DatagramProtocol):
    """
    Echo each admitted datagram to its sender; count everything in
    C{counts}.

    Per datagram, only what the settings need is done: the transform is
    C{bytes.upper} itself, or nothing when plain; with every rate
    unlimited, the size is the only check.

    @param plain: echo unchanged (RFC 862) instead of uppercased.
    @param observe: if given, called as C{observe(address, size, reason)}
        for each datagram (C{reason} L{None} when echoed): the server's
        per-source log.
    @param observeDropsOnly: call C{observe} only for the datagrams dropped
        (the quiet log has nothing to do with the others).
    @param chooseSend: given the port, when it starts, the function that
        sends a reply as C{send(datagram, address)} (the server's is
        L{uppercase.net.transport.datagramSender}); if L{None},
        C{transport.write}.
    """

    noisy = False

    def __init__(
        self,
        admission: DatagramAdmission,
        counts: DatagramCounts,
        plain: bool = False,
        observe: Callable[[Address, int, str | None], None] | None = None,
        observeDropsOnly: bool = False,
        chooseSend: Callable[[Any], Callable[[bytes, Any], object]] | None = None,
    ) -> None:
        self.admission = admission
        self.counts = counts
        self.transform = unchanged if plain else upper
        self.observe = observe
        self._upper = None if plain else bytes.upper
        self._check = admission.check if admission.limited else None
        self._observeEchoed = observe if observe is not None and not observeDropsOnly else None
        self._chooseSend = chooseSend

    def makeConnection(self, transport: IUDPTransport) -> None:
        super().makeConnection(transport)
        choose = self._chooseSend
        self.send: Callable[[bytes, Any], object] = (
            transport.write if choose is None else choose(transport)
        )

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        counts = self.counts
        size = len(datagram)
        counts.received += 1
        counts.receivedBytes += size
        reason: str | None
        try:
            check = self._check
            if check is None:
                reason = TOO_LARGE if size > MAX_DATAGRAM else None
            else:
                reason = check(addr[0], size)
            if reason is None:
                upper = self._upper
                try:
                    self.send(datagram if upper is None else upper(datagram), addr)
                except ConnectionRefusedError:
                    # Twisted's Port.write ignores it on a port that is not
                    # connected: counted sent, as before (datagramSender).
                    pass
                except (OSError, MessageLengthError):
                    reason = SEND_FAILED
                if reason is None:
                    counts.sent += 1
                    counts.sentBytes += size
        except Exception:
            reason = UNREADABLE
        if reason is None:
            if self._observeEchoed is not None:
                self._observeEchoed(addr, size, None)
            return
        counts.dropped[reason] += 1
        if self.observe is not None:
            self.observe(addr, size, reason)
