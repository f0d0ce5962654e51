"""
One socket of a load run over UDP: L{DatagramConnection}, an
L{uppercase.load.connection.ILoadConnection} like a TCP connection, so that
the run, its schedules, results, reports, prober and metrics are the same.

Each datagram is a header (L{uppercase.client._datagram}) and a payload of
C{--size} minus the header's bytes, from L{uppercase.load.payload}; each
reply is accounted for by the socket's L{DatagramTracker} into the run's
shared L{DatagramCounts} (C{stats.datagrams}): a reply in time feeds the
same counts and latency histogram as a TCP reply; a datagram with no reply
within C{--timeout} is lost (C{stats.lost}), which C{--max-loss} judges.
"""

from __future__ import annotations

from typing import Any, Callable, cast

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress, IDelayedCall, IProtocolFactory, IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.python.failure import Failure

from uppercase.client._datagram import (
    ANSWER,
    CORRUPTED,
    FOREIGN,
    HEADER_SIZE,
    DatagramCounts,
    DatagramTracker,
    encode,
)
from uppercase.client._ending import EarlyEnd
from uppercase.client._udp import openDatagram
from uppercase.client._verifier import Mismatch
from uppercase.load.connection import Owner
from uppercase.load.payload import Payloads
from uppercase.load.stats import LoadStats

__all__ = ["DatagramConnection", "datagramConnect"]


class _Socket(DatagramProtocol):
    """
    The Twisted side of a L{DatagramConnection}: what the port tells it.
    """

    noisy = False  # no "Starting protocol <...>" log line (a repr) per socket

    def __init__(self, connection: DatagramConnection) -> None:
        self._connection = connection

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self._connection.datagramReceived(datagram)

    def connectionRefused(self) -> None:
        self._connection.refused()

    def stopProtocol(self) -> None:
        self._connection.closed()


class DatagramConnection:
    """
    One UDP socket of a load run.

    @ivar number: the socket's number in the run (from 1), in every header.
    @ivar tracker: its datagrams' accounting.
    @ivar transport: itself: what the run aborts (L{abortConnection}).
    """

    timedOut = False

    def __init__(
        self,
        number: int,
        payloads: Payloads,
        stats: LoadStats,
        counts: DatagramCounts,
        clock: IReactorTime,
        owner: Owner,
        timeout: float,
        pipeline: int = 1,
        plain: bool = False,
    ) -> None:
        self.number = number
        self._payloads = payloads
        self._stats = stats
        self._clock = clock
        self._owner = owner
        self.pipeline = pipeline
        self._plain = plain
        self.size = HEADER_SIZE + payloads.size
        self.tracker = DatagramTracker(number, timeout, self._expected, counts)
        self.protocol = _Socket(self)
        self.transport = self
        self.lastProgress = 0.0
        self.closing = False
        self.gone = False
        self.connectedAt: float | None = None
        self._port: Any = None
        self._expiry: IDelayedCall | None = None

    def _expected(self, sequence: int) -> bytes:
        request, expected = self._payloads.message(self.number, sequence)
        return request if self._plain else expected

    # ILoadConnection.

    @property
    def inFlight(self) -> int:
        return self.tracker.inFlight

    @property
    def waiting(self) -> bool:
        """
        Never, for the run's reply time-out: each datagram has its own, and
        one lost is counted, not a reason to close the socket.
        """
        return False

    def room(self) -> int:
        if self.closing or self.gone or self.connectedAt is None:
            return 0
        if self.pipeline <= 0:
            return 1 << 30
        return self.pipeline - self.tracker.inFlight

    def opened(self, port: Any) -> None:
        """
        The socket is open and connected to the server.
        """
        self._port = port
        self.connectedAt = self.lastProgress = self._clock.seconds()
        self._owner.connected(self)

    def start(self) -> None:
        """
        Nothing: a schedule says when this socket sends.
        """

    def send(self, count: int, first: float, step: float = 0.0) -> None:
        if self._port is None:
            return
        now = self._clock.seconds()
        tracker = self.tracker
        payloads = self._payloads
        write = self._port.write
        number = self.number
        stats = self._stats
        for i in range(count):
            sequence = tracker.send(now, first + i * step)
            stats.sent += 1
            try:
                write(encode(number, sequence, payloads.message(number, sequence)[0]))
            except OSError as e:
                # Dropped by our own kernel (a full send buffer): lost in
                # flight like any other, and said so.
                stats.error(f"not sent: {e.strerror or e}")
            if self.gone:
                break  # refused at once
        self._arm()

    def datagramReceived(self, datagram: bytes) -> None:
        now = self._clock.seconds()
        self.lastProgress = now
        arrival = self.tracker.receive(datagram, now)
        kind = arrival.kind
        stats = self._stats
        if kind == ANSWER:
            stats.verified += 1
            stats.answered += 1
            if arrival.stamp >= stats.measureFrom:
                stats.latencies.recordMicros(int((now - arrival.stamp) * 1e6) or 1)
                stats.measured += 1
                stats.measuredBytes += self.size
                stats.lastMeasured = now
        elif kind == CORRUPTED:
            stats.failed += 1
            stats.answered += 1
            stats.mismatch(self._mismatch(arrival.sequence, arrival.payload))
        elif kind == FOREIGN:
            stats.error("foreign datagram")
        elif arrival.lost:
            # Late, and lost only now (its timer had not run yet): lost here
            # too, as the expiry would have counted it.
            stats.lost += 1
        else:
            return  # late or duplicated: counted by the tracker only
        self._afterAnswer()

    def _mismatch(self, sequence: int, received: bytes) -> Mismatch:
        expected = self._expected(sequence)
        index = next(
            (i for i, (a, b) in enumerate(zip(expected, received)) if a != b),
            min(len(expected), len(received)),
        )
        return Mismatch.around(
            connection=self.number,
            message=sequence,
            offset=HEADER_SIZE + index,
            messageOffset=HEADER_SIZE + index,
            expected=expected,
            received=received,
            index=index,
        )

    def _afterAnswer(self) -> None:
        if self.closing and not self.tracker.inFlight:
            self._close()
        elif not self.closing:
            self._owner.room(self)

    def _arm(self) -> None:
        if self._expiry is not None or self.gone:
            return
        deadline = self.tracker.nextDeadline
        if deadline is not None:
            delay = max(deadline - self._clock.seconds(), 0.0)
            self._expiry = self._clock.callLater(delay, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        lost = self.tracker.expire(self._clock.seconds())
        self._stats.lost += lost
        self._arm()
        if lost:
            self._afterAnswer()

    def refused(self) -> None:
        """
        ICMP port unreachable: nothing listens there (yet).
        """
        self._stats.error("refused")

    def close(self) -> None:
        """
        Send nothing more; close once every datagram in flight is answered
        or lost.
        """
        self.closing = True
        if not self.tracker.inFlight:
            self._close()

    def dropInFlight(self) -> int:
        """
        Count what is in flight as lost (the run gave up on it).

        @return: how many datagrams.
        """
        return self.tracker.expireAll()

    def earlyEnd(self, kind: str) -> EarlyEnd:
        """
        Never asked for (a socket is never L{waiting}): its datagrams are
        counted one by one instead, so no bytes are said here.
        """
        return EarlyEnd(self.number, kind, 0, 0)

    def countLoss(self, reason: Failure, interrupted: bool) -> bool:
        """
        The socket is closed: what is still in flight is lost (unless a
        signal cut the run short); the end is as it should be if the run
        asked for it.
        """
        if not interrupted:
            self._stats.lost += self.dropInFlight()
        if not self.closing and not interrupted:
            # Under epoll, an ICMP error closes the socket: port unreachable.
            self._stats.error("refused")
            return False
        return self.closing

    def abortConnection(self) -> None:
        self.closing = True
        self._close()

    def loseConnection(self) -> None:
        self.close()

    def _close(self) -> None:
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = None
        port, self._port = self._port, None
        if port is not None and not self.gone:
            port.stopListening()

    def closed(self) -> None:
        """
        The port is closed (by L{_close}, or by the reactor on an error
        of the socket: an ICMP error closes it under epoll).
        """
        if self.gone:
            return
        self.gone = True
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = None
        self._owner.lost(self, Failure(ConnectionDone()))


def datagramConnect(reactor: Any, description: str) -> Callable[[IProtocolFactory], Deferred[Any]]:
    """
    What a L{uppercase.load.run.LoadRun} connects with over UDP: each
    C{factory} builds a L{DatagramConnection}, whose socket is opened and
    connected to C{description}.
    """

    def connect(factory: IProtocolFactory) -> Deferred[Any]:
        connection: Any = factory.buildProtocol(cast(IAddress, None))
        opening = openDatagram(reactor, description, connection.protocol)
        return opening.addCallback(lambda port: (connection.opened(port), connection)[1])

    return connect
