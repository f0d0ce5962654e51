"""
One connection of a load run: it sends the messages its scheduler gives it,
and checks every byte that comes back against the expected reply stream as
it arrives (nothing is accumulated), locating any wrong byte exactly: the
connection, the message, and the offset in the connection's stream.

The protocol only speaks: when to send is its scheduler's business
(L{uppercase._schedule}), what it sends is L{uppercase._payload}'s, and
the results go to a L{LoadStats}.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Deque, Tuple

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from ._loadstats import LoadStats, Mismatch
from ._payload import Payloads
from ._transport import supportsDirectWrites, writeDirectly

__all__ = ["LoadProtocol", "Owner"]

Preamble = Callable[[Any], bytes]
"""Given the transport, what to send before the first message (a PROXY
header), or C{b""}."""


def noPreamble(transport: Any) -> bytes:
    return b""


class Owner:
    """
    What a L{LoadProtocol} tells the run it belongs to (see
    L{uppercase._loadrun.LoadRun}, which is one).
    """

    def connected(self, protocol: LoadProtocol) -> None:
        """The connection is up."""

    def room(self, protocol: LoadProtocol) -> None:
        """C{protocol} can take more messages."""

    def lost(self, protocol: LoadProtocol, reason: Failure) -> None:
        """The connection is gone."""


_InFlight = Tuple[bytes, float]
"""A message sent and not yet answered in full: its expected reply and its
scheduled send time."""


@implementer(IPushProducer)
class LoadProtocol(Protocol):
    """
    Send messages when told (L{send}); verify replies as they arrive.

    @ivar number: the connection's number in the run (from 1).
    @ivar sent: messages sent.
    @ivar answered: messages whose reply arrived in full (right or wrong).
    @ivar receivedBytes: bytes received so far: the offset in this
        connection's reply stream of what arrives next.
    @ivar inFlight: messages sent and not answered in full.
    @ivar paused: the transport's buffer is full (flow control).
    @ivar lastProgress: when bytes last arrived, or when a message was sent
        while none was in flight: what the run's time-out looks at.
    """

    transport: Any

    def __init__(
        self,
        number: int,
        payloads: Payloads,
        stats: LoadStats,
        clock: IReactorTime,
        owner: Owner,
        pipeline: int = 1,
        preamble: Preamble = noPreamble,
    ) -> None:
        self.number = number
        self._payloads = payloads
        self._stats = stats
        self._clock = clock
        self._owner = owner
        self.pipeline = pipeline
        self._preamble = preamble
        self._inFlight: Deque[_InFlight] = deque()
        self._partial = 0
        self._spoiled = False
        self.sent = 0
        self.answered = 0
        self.receivedBytes = 0
        self.paused = False
        self.closing = False
        self.connectedAt: float | None = None
        self.lastProgress = 0.0
        self.timedOut = False
        self._direct = False

    @property
    def inFlight(self) -> int:
        return len(self._inFlight)

    def room(self) -> int:
        """
        How many more messages this connection takes now (a large number
        when its pipeline has no limit).
        """
        if self.paused or self.closing or self.connectedAt is None:
            return 0
        if self.pipeline <= 0:
            return 1 << 30
        return self.pipeline - len(self._inFlight)

    def connectionMade(self) -> None:
        self.connectedAt = self.lastProgress = self._clock.seconds()
        self._direct = supportsDirectWrites(self.transport)
        self.transport.registerProducer(self, True)
        preamble = self._preamble(self.transport)
        if preamble:
            self.transport.write(preamble)
        self._owner.connected(self)

    def send(self, count: int, first: float, step: float = 0.0) -> None:
        """
        Send C{count} messages, the I{i}th scheduled at C{first + i * step}
        (latencies are measured from then).
        """
        if count <= 0:
            return
        if not self._inFlight:
            self.lastProgress = self._clock.seconds()
        message = self._payloads.message
        number = self.number
        inFlight = self._inFlight
        parts = []
        base = self.sent + 1
        for i in range(count):
            data, expected = message(number, base + i)
            parts.append(data)
            inFlight.append((expected, first + i * step))
        self.sent += count
        self._stats.sent += count
        data = parts[0] if count == 1 else b"".join(parts)
        if self._direct:
            writeDirectly(self.transport, data)
        else:
            self.transport.write(data)

    def dataReceived(self, data: bytes) -> None:
        if self.closing and not self._inFlight:
            return
        now = self._clock.seconds()
        self.lastProgress = now
        stats = self._stats
        inFlight = self._inFlight
        measureFrom = stats.measureFrom
        record = stats.latencies.recordMicros
        pos = 0
        size = len(data)
        done = 0
        runMicros = -1
        runCount = 0
        measured = 0
        while pos < size:
            if not inFlight:
                self._unexpected(data, pos)
                break
            expected, scheduled = inFlight[0]
            partial = self._partial
            need = len(expected) - partial
            if size - pos >= need:
                if partial:
                    ok = data.startswith(expected[partial:], pos)
                else:
                    ok = data.startswith(expected, pos)
                if not ok:
                    self._mismatch(data, pos, expected, partial, self.answered + done + 1)
                pos += need
                self.receivedBytes += need
                inFlight.popleft()
                self._partial = 0
                done += 1
                if self._spoiled:
                    self._spoiled = False
                    stats.failed += 1
                    continue
                stats.verified += 1
                if scheduled >= measureFrom:
                    measured += 1
                    micros = int((now - scheduled) * 1e6) or 1
                    if micros == runMicros:
                        runCount += 1
                    else:
                        if runCount:
                            record(runMicros, runCount)
                        runMicros = micros
                        runCount = 1
            else:
                chunk = data[pos:]
                if not expected.startswith(chunk, partial):
                    self._mismatch(data, pos, expected, partial, self.answered + done + 1)
                self._partial += size - pos
                self.receivedBytes += size - pos
                pos = size
        if runCount:
            record(runMicros, runCount)
        if measured:
            stats.measured += measured
            stats.measuredBytes += measured * self._payloads.size
            stats.lastMeasured = now
        if done:
            self.answered += done
            stats.answered += done
            if self.closing and not inFlight:
                self._loseConnection()
            else:
                self._owner.room(self)

    def _mismatch(self, data: bytes, pos: int, expected: bytes, partial: int, message: int) -> None:
        """
        Report the first wrong byte of the message at the head (once per
        message).
        """
        if self._spoiled:
            return
        self._spoiled = True
        got = data[pos : pos + len(expected) - partial]
        want = expected[partial : partial + len(got)]
        at = next(i for i in range(len(got)) if got[i] != want[i])
        self._stats.mismatch(
            Mismatch.around(
                connection=self.number,
                message=message,
                offset=self.receivedBytes + at,
                messageOffset=partial + at,
                expected=want,
                received=got,
                index=at,
            )
        )

    def _unexpected(self, data: bytes, pos: int) -> None:
        """
        Bytes arrived while no reply was due: report them once and ignore
        the rest of this chunk.
        """
        self._stats.mismatch(
            Mismatch.around(
                connection=self.number,
                message=self.sent + 1,
                offset=self.receivedBytes,
                messageOffset=0,
                expected=b"",
                received=data[pos:],
                index=0,
            )
        )
        self.receivedBytes += len(data) - pos

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        if self.paused:
            self.paused = False
            self._owner.room(self)

    def stopProducing(self) -> None:
        self.paused = True

    def close(self) -> None:
        """
        Send nothing more, and close once the messages in flight are
        answered (at once if none is).
        """
        self.closing = True
        if not self._inFlight:
            self._loseConnection()

    def _loseConnection(self) -> None:
        # TLS waits for a registered producer to go before it closes.
        self.transport.unregisterProducer()
        self.transport.loseConnection()

    def dropInFlight(self) -> int:
        """
        Forget the messages in flight (the run gave up on them).

        @return: how many there were.
        """
        count = len(self._inFlight)
        self._inFlight.clear()
        self._partial = 0
        self._spoiled = False
        return count

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self.closing = True
        self.paused = True
        self._owner.lost(self, reason)
