"""
One connection of a load run: it sends the messages its scheduler gives it,
and has every byte that comes back checked against the expected reply stream
as it arrives (nothing is accumulated) by the client's one reply verifier
(L{uppercase.client._verifier.ReplyVerifier}), which locates any wrong byte
exactly: the connection, the message, and the offset in the connection's
stream.

The protocol only speaks: when to send is its scheduler's business
(L{uppercase.load.schedule}), what it sends is L{uppercase.load.payload}'s, the
checking is the verifier's, and the results go to a L{LoadStats}.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Deque

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IHandshakeListener,
    IPushProducer,
    IReactorTime,
    ISSLTransport,
    ITCPTransport,
)
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import alsoProvides, implementer

from uppercase.client._connect import errorKind
from uppercase.client._ending import EarlyEnd, endKind
from uppercase.client._verifier import ReplyVerifier
from uppercase.load.connection import Owner, Preamble, noPreamble
from uppercase.load.payload import Payloads
from uppercase.load.stats import LoadStats
from uppercase.net.transport import directWriteTarget, writeDirectly

__all__ = ["LoadProtocol", "Owner", "awaitsHandshake"]


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


def awaitsHandshake(protocol: Any, transport: Any) -> bool:
    """
    Whether C{transport} is TLS, which carries nothing before its handshake
    is over: until then a message written is only buffered, and one the
    handshake then fails was never sent.  If so, C{protocol} is declared an
    C{IHandshakeListener} now, so that TLS calls its C{handshakeCompleted}.

    (Not on the class: Twisted's endpoints wrap a protocol in one that
    copies its IHalfCloseableProtocol and IHandshakeListener with
    C{directlyProvides}, each call replacing the last, so a class with both
    would lose its half-close on TCP.  TLS asks when the handshake ends.)
    """
    if not ISSLTransport.providedBy(transport):
        return False
    alsoProvides(protocol, IHandshakeListener)
    return True


@implementer(IPushProducer)
class LoadProtocol(Protocol):
    """
    Send messages when told (L{send}); verify replies as they arrive.
    L{uppercase.load.connection.ILoadConnection}, for messages.

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
    @ivar connectedAt: when the connection could carry messages (on TLS,
        once the handshake was over), or L{None}.
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
        self._verifier = ReplyVerifier(payloads.size, number)
        # Bound once: these run per message and per read.
        self._expect = self._verifier.expect
        self._feed = self._verifier.feed
        self.sent = 0
        self.answered = 0
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

    @property
    def waiting(self) -> bool:
        return bool(self._stamps)

    @property
    def receivedBytes(self) -> int:
        return self._verifier.received

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
        self.lastProgress = self._clock.seconds()
        self._direct = directWriteTarget(self.transport)
        setNoDelay(self.transport)
        self.transport.registerProducer(self, True)
        preamble = self._preamble(self.transport)
        if preamble:
            self.transport.write(preamble)
        self._owner.opened(self)
        if not awaitsHandshake(self, self.transport):
            self._carrying()

    def handshakeCompleted(self) -> None:
        """
        TLS can carry messages now.
        """
        if self.connectedAt is None and not self.gone:
            self._carrying()

    def _carrying(self) -> None:
        self.connectedAt = self.lastProgress = self._clock.seconds()
        self._owner.connected(self)

    def start(self) -> None:
        """
        Nothing: a schedule says when this connection sends.
        """

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
        self._expect(expected)
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
        Have C{data} checked against the expected replies where this
        connection's stream has got to (one comparison for the whole chunk
        when it is right), then account for each reply it completes.
        """
        if self.closing and not self._stamps:
            return
        now = self._clock.seconds()
        self.lastProgress = now
        done, failed, found = self._feed(data)
        if found:
            for mismatch in found:
                self._stats.mismatch(mismatch)
        if done:
            self._completed(done, now, failed)

    def _completed(self, done: int, now: float, failed: tuple[int, ...]) -> None:
        """
        C{done} replies are in, the last of them the verifier's
        C{completed}; those numbered in C{failed} had a wrong byte.
        """
        stats = self._stats
        stamps = self._stamps
        measureFrom = stats.measureFrom
        record = stats.latencies.recordMicros
        runMicros = -1
        runCount = 0
        measured = 0
        if failed:
            last = self._verifier.completed
            wrong = {last - number for number in failed}
        for left in range(done - 1, -1, -1):
            scheduled = stamps.popleft()
            if failed and left in wrong:
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
        if failed:
            stats.verified += done - len(failed)
            stats.failed += len(failed)
        else:
            stats.verified += done
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
        self._verifier.forget()
        return count

    def earlyEnd(self, kind: str) -> EarlyEnd:
        """
        This connection ending now as C{kind}: a FIN with bytes owed is
        C{closed early} (L{endKind}).
        """
        verifier = self._verifier
        return EarlyEnd(self.number, endKind(kind, verifier.due), verifier.received, verifier.due)

    def countLoss(self, reason: Failure, interrupted: bool) -> bool:
        """
        Count the messages in flight as lost, and the loss as an error
        (with the bytes received and owed) unless the run asked for it.
        """
        end = self.earlyEnd(errorKind(reason))
        unanswered = self.dropInFlight()
        if interrupted:
            return False
        if not unanswered and self.closing:
            return True
        self._stats.lost += unanswered
        if self.connectedAt is None:
            self._stats.error(end.kind)  # it never carried a byte (TLS failed)
        else:
            self._stats.ended(end)
        return False

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        # Not closing: whether the run asked for this end is what tells a
        # clean end from a connection lost between messages.
        self.gone = True
        self.paused = True
        self._owner.lost(self, reason)
