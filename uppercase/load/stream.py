"""
One C{--stream} connection: send seeded random bytes full duplex as fast
as the path takes them (flow control, not a schedule, sets the pace), check
every byte that comes back as it arrives, and end with a half-close; the
connection is clean when every byte came back and the server then closed.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from uppercase.load.payload import StreamPattern
from uppercase.load.protocol import Owner, Preamble, noPreamble
from uppercase.load.stats import LoadStats, Mismatch
from uppercase.net.transport import canHalfClose

__all__ = ["StreamProtocol"]

WRITE_SIZE = 65536
"""Bytes per write: what Twisted's buffer sends in one call."""


@implementer(IPushProducer, IHalfCloseableProtocol)
class StreamProtocol(Protocol):
    """
    Stream until L{finish}, or until C{limit} bytes are sent (0: no limit).

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
        self._unit = unit
        self.limit = limit
        self._preamble = preamble
        self.sentBytes = 0
        self.receivedBytes = 0
        self.sending = False
        self.finished = False
        self.paused = False
        self.clean = False
        self.closedEarly = False
        self.connectedAt: float | None = None
        self.lastProgress = 0.0
        self.timedOut = False
        self._spoiledUntil = 0

    @property
    def inFlight(self) -> int:
        """
        Bytes sent and not yet back.
        """
        return self.sentBytes - self.receivedBytes

    def room(self) -> int:
        return 0

    def connectionMade(self) -> None:
        self.connectedAt = self.lastProgress = self._clock.seconds()
        self.transport.registerProducer(self, True)
        preamble = self._preamble(self.transport)
        if preamble:
            self.transport.write(preamble)
        self._owner.connected(self)  # type: ignore[arg-type]

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
        size = len(data)
        if self.receivedBytes + size > self.sentBytes:
            extra = self.receivedBytes + size - self.sentBytes
            self._report(b"", data[size - extra :], 0)
            size -= extra
        pos = 0
        pattern = self._pattern
        while pos < size:
            offset = self.receivedBytes
            if offset < self._spoiledUntil:
                # The rest of a unit with a wrong byte already reported.
                skip = min(self._spoiledUntil - offset, size - pos)
                pos += skip
                self.receivedBytes += skip
                continue
            expected = pattern.expected(offset, size - pos)
            n = len(expected)
            if not data.startswith(expected, pos):
                got = data[pos : pos + n]
                at = next(i for i in range(n) if got[i] != expected[i])
                self._report(expected, got, at)
                n = at + 1
            pos += n
            self.receivedBytes += n
        stats = self._stats
        stats.streamBytes += size
        if now >= stats.measureFrom:
            stats.measuredBytes += size
            stats.lastMeasured = now
        self._closeIfDone()

    def _report(self, expected: bytes, got: bytes, at: int) -> None:
        """
        Report the wrong byte C{got[at]} (C{expected[at]} was due), C{got}
        starting at the offset received so far; or, with nothing
        C{expected}, bytes beyond what was sent.
        """
        unit = self._unit
        offset = self.receivedBytes + at if expected else self.sentBytes
        self._spoiledUntil = (offset // unit + 1) * unit
        self._stats.mismatch(
            Mismatch.around(
                connection=self.number,
                message=offset // unit + 1,
                offset=offset,
                messageOffset=offset % unit,
                expected=expected,
                received=got,
                index=at,
            )
        )

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
        return 0

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self.sending = False
        self.paused = True
        self._owner.lost(self, reason)  # type: ignore[arg-type]
