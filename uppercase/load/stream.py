"""
One C{--stream} connection: send seeded random bytes full duplex as fast
as the path takes them (flow control, not a schedule, sets the pace), have
every byte that comes back checked as it arrives by the client's one reply
verifier (L{uppercase.client._verifier.ReplyVerifier}, its message the
stream's C{unit}), and end with a half-close; the connection is clean when
every byte came back and the server then closed.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IPushProducer,
    IReactorTime,
)
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from uppercase.client._connect import errorKind
from uppercase.client._ending import CLOSED_EARLY, EarlyEnd
from uppercase.client._verifier import ReplyVerifier
from uppercase.load.connection import Owner, Preamble, noPreamble
from uppercase.load.payload import StreamPattern
from uppercase.load.protocol import awaitsHandshake
from uppercase.load.stats import LoadStats
from uppercase.net.transport import canHalfClose

__all__ = ["StreamProtocol"]

WRITE_SIZE = 65536
"""Bytes per write: what Twisted's buffer sends in one call."""


@implementer(IPushProducer, IHalfCloseableProtocol)
class StreamProtocol(Protocol):
    """
    Stream until L{finish}, or until C{limit} bytes are sent (0: no limit).
    L{uppercase.load.connection.ILoadConnection}, for a stream: it takes no
    messages (its L{room} is 0), it sends by itself once L{start}ed.

    @ivar sentBytes: bytes written.
    @ivar receivedBytes: bytes received (and checked).
    @ivar clean: every byte came back, then the server closed.
    @ivar closedEarly: the server closed before every byte came back.
    """

    transport: Any

    def __init__(
        self,
        number: int,
        pattern: StreamPattern,
        stats: LoadStats,
        clock: IReactorTime,
        owner: Owner,
        unit: int,
        limit: int = 0,
        preamble: Preamble = noPreamble,
    ) -> None:
        self.number = number
        self._pattern = pattern
        self._stats = stats
        self._clock = clock
        self._owner = owner
        self.limit = limit
        self._preamble = preamble
        self._verifier = ReplyVerifier(unit, number)
        self.sentBytes = 0
        self.sending = False
        self.finished = False
        self.paused = False
        self.clean = False
        self.closedEarly = False
        self.connectedAt: float | None = None
        self.lastProgress = 0.0
        self.timedOut = False
        self.gone = False

    @property
    def receivedBytes(self) -> int:
        """
        Bytes received (and checked).
        """
        return self._verifier.received

    @property
    def inFlight(self) -> int:
        """
        Bytes sent and not yet back.
        """
        return self.sentBytes - self.receivedBytes

    @property
    def waiting(self) -> bool:
        """
        Bytes are due, or the server's close is (once finished).
        """
        return self.finished or self.sentBytes > self.receivedBytes

    def room(self) -> int:
        return 0

    def send(self, count: int, first: float, step: float = 0.0) -> None:
        """
        Never called: a stream takes no messages (its L{room} is 0).
        """

    def connectionMade(self) -> None:
        self.lastProgress = self._clock.seconds()
        self.transport.registerProducer(self, True)
        preamble = self._preamble(self.transport)
        if preamble:
            self.transport.write(preamble)
        self._owner.opened(self)
        if not awaitsHandshake(self, self.transport):
            self._carrying()

    def handshakeCompleted(self) -> None:
        """
        TLS can carry the stream now.
        """
        if self.connectedAt is None and not self.gone:
            self._carrying()

    def _carrying(self) -> None:
        self.connectedAt = self.lastProgress = self._clock.seconds()
        self._owner.connected(self)

    def start(self) -> None:
        """
        Start streaming.
        """
        if not self.finished:
            self.sending = True
            self._pump()

    def _pump(self) -> None:
        while self.sending and not self.paused:
            size = WRITE_SIZE
            if self.limit:
                size = min(size, self.limit - self.sentBytes)
                if size <= 0:
                    self.finish()
                    return
            chunk = self._pattern.chunk(self.sentBytes, size)
            self._verifier.expect(self._pattern.expected(self.sentBytes, len(chunk)))
            self.sentBytes += len(chunk)
            self.transport.write(chunk)

    def finish(self) -> None:
        """
        Send nothing more; end our side (a half-close; on TLS, which has
        none, close once every byte is back).
        """
        if self.finished:
            return
        self.sending = False
        self.finished = True
        self.lastProgress = self._clock.seconds()
        # A paused producer would be resumed, instead of the write side
        # shut down, once the buffer drains (Twisted's FileDescriptor).
        self.transport.unregisterProducer()
        if canHalfClose(self.transport):
            self.transport.loseWriteConnection()
        else:
            self._closeIfDone()

    def _closeIfDone(self) -> None:
        if self.finished and self.receivedBytes >= self.sentBytes:
            if not canHalfClose(self.transport):
                self.clean = True
                self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        self.lastProgress = now = self._clock.seconds()
        verifier = self._verifier
        before = verifier.received
        _, _, found = verifier.feed(data)
        for mismatch in found:
            self._stats.mismatch(mismatch)
        size = verifier.received - before
        stats = self._stats
        stats.streamBytes += size
        if now >= stats.measureFrom:
            stats.measuredBytes += size
            stats.lastMeasured = now
        self._closeIfDone()

    def readConnectionLost(self) -> None:
        if self.finished and self.receivedBytes >= self.sentBytes:
            self.clean = True
        else:
            self.closedEarly = True
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self._pump()

    def stopProducing(self) -> None:
        self.paused = True
        self.sending = False

    def close(self) -> None:
        """
        End the stream now (the run is stopping).
        """
        self.finish()

    def dropInFlight(self) -> int:
        """
        Nothing to count: a stream's bytes in flight are not messages.
        """
        return 0

    def countLoss(self, reason: Failure, interrupted: bool) -> bool:
        """
        Clean if every byte came back and then the server closed; a close
        before that is an error, and so is any other loss unless a signal
        cut the run short.
        """
        if self.clean:
            return True
        if interrupted and not self.closedEarly:
            return False
        end = self.earlyEnd(CLOSED_EARLY if self.closedEarly else errorKind(reason))
        if self.connectedAt is None:
            self._stats.error(end.kind)  # it never carried a byte (TLS failed)
        else:
            self._stats.ended(end)
        return False

    def earlyEnd(self, kind: str) -> EarlyEnd:
        """
        This stream ending now as C{kind}: the bytes that came back, and
        those sent that had not.
        """
        return EarlyEnd(self.number, kind, self.receivedBytes, self.inFlight)

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self.gone = True
        self.sending = False
        self.paused = True
        self._owner.lost(self, reason)
