"""
The UDP client's datagrams, and their exact accounting: sans-IO, as the
reply verifier is (no socket, no clock: times are given).

Every datagram starts with a fixed header the uppercase transform cannot
change (digits, upper-case letters and spaces only)::

    UC1 S000001 Q000000000042 <payload>

C{S}: the sending socket's number in the run (from 1); C{Q}: the datagram's
sequence number on that socket (from 1).  The reply due is the same header
and the payload uppercased (unchanged with C{--plain}).

L{DatagramTracker} counts one socket's datagrams into L{DatagramCounts},
each count defined so that they add up (C{docs/load-testing.md}):

  - C{sent}: datagrams sent.
  - C{received}: datagrams that arrived, of every kind below.
  - C{verified}: first replies in time whose payload is the one due.
  - C{corrupted}: first replies in time whose header is intact but whose
    payload differs.
  - C{lost}: datagrams with no reply within the timeout (C{lost} =
    C{sent} - C{verified} - C{corrupted} once nothing is in flight).
  - C{late}: first replies that arrived after their timeout: each was
    already counted lost, and stays so.
  - C{duplicated}: every reply after the first for a sequence number.
  - C{reordered}: first replies in time that arrived after the first reply
    to a later datagram of the same socket (they are also verified or
    corrupted).
  - C{foreign}: datagrams with no intact header of this socket, or for a
    sequence number not sent, or sent more than L{WINDOW} datagrams ago.

So C{received} = C{verified} + C{corrupted} + C{late} + C{duplicated} +
C{foreign}.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Callable, ClassVar, Deque, Dict, Tuple

__all__ = [
    "ANSWER",
    "CORRUPTED",
    "DUPLICATE",
    "FOREIGN",
    "HEADER_SIZE",
    "LATE",
    "MAX_DATAGRAM",
    "MAX_SOCKETS",
    "WINDOW",
    "Arrival",
    "DatagramCounts",
    "DatagramTracker",
    "encode",
    "header",
    "parseHeader",
]

_FORMAT = b"UC1 S%06d Q%012d "
HEADER_SIZE = 26
"""Bytes of the header every datagram starts with."""

MAX_DATAGRAM = 65507
"""The largest UDP payload over IPv4."""

MAX_SOCKETS = 999999
"""The most sockets the header numbers."""

WINDOW = 1 << 16
"""How many of a socket's latest sequence numbers are remembered after they
are answered or lost: a reply to an older one is foreign."""

ANSWER = "answer"
CORRUPTED = "corrupted"
LATE = "late"
DUPLICATE = "duplicate"
FOREIGN = "foreign"


def header(socket: int, sequence: int) -> bytes:
    """
    The header of datagram C{sequence} of socket C{socket}.
    """
    return _FORMAT % (socket, sequence)


def encode(socket: int, sequence: int, payload: bytes) -> bytes:
    """
    The datagram: its header, then C{payload}.
    """
    return _FORMAT % (socket, sequence) + payload


def _digits(field: bytes) -> bool:
    return field.isdigit() and field.isascii()


def parseHeader(datagram: bytes) -> Tuple[int, int] | None:
    """
    The socket and sequence numbers of C{datagram}'s header, or L{None} if
    it has no intact header.
    """
    if len(datagram) < HEADER_SIZE or datagram[:5] != b"UC1 S" or datagram[25:26] != b" ":
        return None
    socket, sequence = datagram[5:11], datagram[13:25]
    if datagram[11:13] != b" Q" or not (_digits(socket) and _digits(sequence)):
        return None
    return int(socket), int(sequence)


@dataclass
class DatagramCounts:
    """
    The counts of one or more sockets (see the module's docstring for what
    each one is).
    """

    sent: int = 0
    received: int = 0
    verified: int = 0
    corrupted: int = 0
    lost: int = 0
    late: int = 0
    duplicated: int = 0
    reordered: int = 0
    foreign: int = 0

    def asDict(self) -> Dict[str, int]:
        return asdict(self)

    def lossPercent(self) -> float | None:
        """
        C{lost} in percent of the datagrams sent whose fate is known
        (answered or lost), or L{None} before any is.
        """
        known = self.verified + self.corrupted + self.lost
        return None if not known else 100.0 * self.lost / known


@dataclass(frozen=True)
class Arrival:
    """
    What a datagram that arrived was.

    @ivar kind: L{ANSWER}, L{CORRUPTED}, L{LATE}, L{DUPLICATE} or
        L{FOREIGN}.
    @ivar sequence: its sequence number (0 for L{FOREIGN}).
    @ivar stamp: when it was sent (or scheduled: what latencies are measured
        from), for L{ANSWER} and L{CORRUPTED}.
    @ivar payload: what followed the header.
    @ivar lost: whether this arrival is what counted its datagram lost (a
        L{LATE} one whose timeout was over, though no L{DatagramTracker.expire}
        had said so yet): a caller keeping its own count of losses adds it.
    """

    kind: str
    sequence: int = 0
    stamp: float = 0.0
    payload: bytes = b""
    # Not a field: a class attribute costs each arrival nothing.
    lost: ClassVar[bool] = False


class _LostNow(Arrival):
    """
    A L{LATE} arrival that counted its datagram lost (L{Arrival.lost}).
    """

    lost = True


_FOREIGN = Arrival(FOREIGN)


class DatagramTracker:
    """
    One socket's datagrams: what is in flight, and what each arrival was.

    @ivar counts: where it counts (may be shared by several sockets).
    """

    def __init__(
        self,
        socket: int,
        timeout: float,
        expected: Callable[[int], bytes],
        counts: DatagramCounts | None = None,
        window: int = WINDOW,
    ) -> None:
        """
        @param expected: the payload due in reply to datagram C{sequence}.
        """
        self.socket = socket
        self.timeout = timeout
        self._expected = expected
        self.counts = DatagramCounts() if counts is None else counts
        self._window = window
        self._next = 1
        self._stamps: Dict[int, float] = {}
        self._deadlines: Deque[Tuple[float, int]] = deque()
        self._answered: Dict[int, bool] = {}
        self._highest = 0

    @property
    def inFlight(self) -> int:
        """Datagrams sent, neither answered nor lost yet."""
        return len(self._stamps)

    @property
    def nextDeadline(self) -> float | None:
        """When the oldest datagram in flight is lost, if none answers it."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][1] not in self._stamps:
            deadlines.popleft()
        return deadlines[0][0] if deadlines else None

    def send(self, now: float, stamp: float | None = None) -> int:
        """
        A datagram is sent at C{now} (its latency measured from C{stamp},
        its scheduled time, if given).

        @return: its sequence number.
        """
        sequence = self._next
        self._next = sequence + 1
        self._stamps[sequence] = now if stamp is None else stamp
        self._deadlines.append((now + self.timeout, sequence))
        self._answered.pop(sequence - self._window, None)
        self.counts.sent += 1
        return sequence

    def expire(self, now: float) -> int:
        """
        Count as lost every datagram in flight whose timeout is over at
        C{now}.

        @return: how many.
        """
        deadlines = self._deadlines
        stamps = self._stamps
        lost = 0
        while deadlines and deadlines[0][0] <= now:
            _, sequence = deadlines.popleft()
            if stamps.pop(sequence, None) is not None:
                self._answered[sequence] = False
                lost += 1
        self.counts.lost += lost
        return lost

    def expireAll(self) -> int:
        """
        Count every datagram in flight as lost (the run gave up on them).

        @return: how many.
        """
        return self.expire(float("inf"))

    def receive(self, datagram: bytes, now: float) -> Arrival:
        """
        Account for C{datagram}, which arrived at C{now}.
        """
        counts = self.counts
        counts.received += 1
        parsed = parseHeader(datagram)
        if parsed is None or parsed[0] != self.socket:
            counts.foreign += 1
            return _FOREIGN
        sequence = parsed[1]
        stamp = self._stamps.pop(sequence, None)
        if stamp is None:
            answered = self._answered.get(sequence)
            if answered is None:
                counts.foreign += 1
                return _FOREIGN
            if answered:
                counts.duplicated += 1
                return Arrival(DUPLICATE, sequence)
            self._answered[sequence] = True
            counts.late += 1
            return Arrival(LATE, sequence)
        payload = datagram[HEADER_SIZE:]
        if now >= self._deadlineOf(sequence, stamp, now):
            # Its timeout is over: lost, though no expire() said so yet.
            self._answered[sequence] = True
            counts.lost += 1
            counts.late += 1
            return _LostNow(LATE, sequence)
        self._answered[sequence] = True
        if sequence < self._highest:
            counts.reordered += 1
        else:
            self._highest = sequence
        if payload == self._expected(sequence):
            counts.verified += 1
            return Arrival(ANSWER, sequence, stamp, payload)
        counts.corrupted += 1
        return Arrival(CORRUPTED, sequence, stamp, payload)

    def _deadlineOf(self, sequence: int, stamp: float, now: float) -> float:
        # The deadlines are in the order sent; the oldest in flight are at
        # the front.  Without an expire() since, look for this one.
        for deadline, number in self._deadlines:
            if number == sequence:
                return deadline
            if deadline > now:
                break
        return float("inf")
