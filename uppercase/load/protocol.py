"""
One connection of a load run: it sends the messages its scheduler gives it,
and checks every byte that comes back against the expected reply stream as
it arrives (nothing is accumulated), locating any wrong byte exactly: the
connection, the message, and the offset in the connection's stream.

The protocol only speaks: when to send is its scheduler's business
(L{uppercase.load.schedule}), what it sends is L{uppercase.load.payload}'s, and
the results go to a L{LoadStats}.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Deque

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer, IReactorTime, ITCPTransport
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from uppercase.load.payload import Payloads
from uppercase.load.stats import LoadStats, Mismatch
from uppercase.net.transport import directWriteTarget, writeDirectly

__all__ = ["LoadProtocol", "Owner"]

Preamble = Callable[[Any], bytes]
"""Given the transport, what to send before the first message (a PROXY
header), or C{b""}."""


def noPreamble(transport: Any) -> bytes:
    return b""


def setNoDelay(transport: Any) -> None:
    """
    Turn Nagle's algorithm off on a TCP transport: with several messages in
    flight it would hold each small write until the previous one is
    acknowledged, and the latencies measured would be the kernel's.
    """
    if ITCPTransport.providedBy(transport):
        try:
            transport.setTcpNoDelay(True)
        except OSError:
            pass  # a UNIX socket, which Twisted 24.7 calls a TCP transport


class Owner:
    """
    What a L{LoadProtocol} tells the run it belongs to (see
    L{uppercase.load.run.LoadRun}, which is one).
    """

    def connected(self, protocol: LoadProtocol) -> None:
        """The connection is up."""

    def room(self, protocol: LoadProtocol) -> None:
        """C{protocol} can take more messages."""

    def lost(self, protocol: LoadProtocol, reason: Failure) -> None:
        """The connection is gone."""


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
    @ivar closing: the run asked this connection to close (L{close}): a
        loss after that is the end it asked for, any other is a failure.
    @ivar gone: the connection is lost.
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
        self._stamps: Deque[float] = deque()
        self._expected: Deque[bytes] = deque()
        self._expectedAt = 0
        self._spoiled: set[int] = set()
        self.sent = 0
        self.answered = 0
        self.receivedBytes = 0
        self.paused = False
        self.closing = False
        self.gone = False
        self.connectedAt: float | None = None
        self.lastProgress = 0.0
        self.timedOut = False
        self._direct: Any = None

    @property
    def inFlight(self) -> int:
        return len(self._stamps)

    def room(self) -> int:
        """
        How many more messages this connection takes now (a large number
        when its pipeline has no limit).
        """
        if self.paused or self.closing or self.gone or self.connectedAt is None:
            return 0
        if self.pipeline <= 0:
            return 1 << 30
        return self.pipeline - len(self._stamps)

    def connectionMade(self) -> None:
        self.connectedAt = self.lastProgress = self._clock.seconds()
        self._direct = directWriteTarget(self.transport)
        setNoDelay(self.transport)
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
        if not self._stamps:
            self.lastProgress = self._clock.seconds()
        data, expected = self._payloads.messages(self.number, self.sent + 1, count)
        self._expected.append(expected)
        if step:
            self._stamps.extend([first + i * step for i in range(count)])
        else:
            self._stamps.extend([first] * count)
        self.sent += count
        self._stats.sent += count
        direct = self._direct
        if direct is not None:
            writeDirectly(direct, data)
        else:
            self.transport.write(data)

    def dataReceived(self, data: bytes) -> None:
        """
        Check C{data} against the expected replies where this connection's
        stream has got to (one comparison for the whole chunk when it is
        right), then account for each reply it completes.
        """
        if self.closing and not self._stamps:
            return
        now = self._clock.seconds()
        self.lastProgress = now
        chunks = self._expected
        size = len(data)
        pos = 0
        at = self._expectedAt
        while pos < size:
            if not chunks:
                self._unexpected(data, pos)
                size = pos
                break
            head = chunks[0]
            take = len(head) - at
            if take >= size - pos:
                take = size - pos
                ok = head.startswith(data if pos == 0 else data[pos:], at)
            else:
                ok = head.startswith(data[pos : pos + take], at)
            if not ok:
                self._locate(data[pos : pos + take], head[at : at + take], pos)
            pos += take
            at += take
            if at == len(head):
                chunks.popleft()
                at = 0
        self._expectedAt = at
        if not size:
            return
        unit = self._payloads.size
        before = self.receivedBytes // unit
        self.receivedBytes += size
        done = self.receivedBytes // unit - before
        if done:
            self._completed(done, now, before)

    def _completed(self, done: int, now: float, before: int) -> None:
        """
        C{done} replies are in, the first of them message C{before + 1}.
        """
        stats = self._stats
        stamps = self._stamps
        measureFrom = stats.measureFrom
        record = stats.latencies.recordMicros
        spoiled = self._spoiled
        runMicros = -1
        runCount = 0
        measured = 0
        verified = done
        for number in range(before + 1, before + done + 1):
            scheduled = stamps.popleft()
            if spoiled and number in spoiled:
                spoiled.discard(number)
                verified -= 1
                continue
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
        if runCount:
            record(runMicros, runCount)
        stats.verified += verified
        stats.failed += done - verified
        if measured:
            stats.measured += measured
            stats.measuredBytes += measured * self._payloads.size
            stats.lastMeasured = now
        self.answered += done
        stats.answered += done
        if self.closing and not stamps:
            self._loseConnection()
        else:
            self._owner.room(self)

    def _locate(self, got: bytes, want: bytes, pos: int) -> None:
        """
        C{got} (from C{pos} in the chunk being read) differs from C{want}:
        report the first wrong byte of each message it touches (once per
        message).
        """
        unit = self._payloads.size
        base = self.receivedBytes + pos
        i = 0
        while i < len(got):
            if got[i] == want[i]:
                i += 1
                continue
            offset = base + i
            number = offset // unit + 1
            messageOffset = offset % unit
            if number not in self._spoiled:
                self._spoiled.add(number)
                start = max(i - messageOffset, 0)
                self._stats.mismatch(
                    Mismatch.around(
                        connection=self.number,
                        message=number,
                        offset=offset,
                        messageOffset=messageOffset,
                        expected=want[start : i + unit],
                        received=got[start : i + unit],
                        index=i - start,
                    )
                )
            # On to the next message: one report per message is enough.
            i += unit - messageOffset

    def _unexpected(self, data: bytes, due: int) -> None:
        """
        More bytes arrived than replies were due: report those beyond once.
        """
        self._stats.mismatch(
            Mismatch.around(
                connection=self.number,
                message=self.sent + 1,
                offset=self.receivedBytes + due,
                messageOffset=0,
                expected=b"",
                received=data[due:],
                index=0,
            )
        )

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
        if not self._stamps:
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
        count = len(self._stamps)
        self._stamps.clear()
        self._expected.clear()
        self._expectedAt = 0
        self._spoiled.clear()
        unit = self._payloads.size
        self.receivedBytes = -(-self.receivedBytes // unit) * unit
        return count

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        # Not closing: whether the run asked for this end is what tells a
        # clean end from a connection lost between messages.
        self.gone = True
        self.paused = True
        self._owner.lost(self, reason)
