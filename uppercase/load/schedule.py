"""
When a load run sends: closed loop (every connection keeps its pipeline
full, sending again as replies arrive) or open loop (messages fall due at a
fixed total rate whether or not replies have come, and each one's latency is
measured from the moment it fell due).

The open loop is what makes a stalled server visible.  A closed-loop tool
stops sending while the server stalls, so the messages it would have sent
never wait, and the stall hides in a lower rate ("coordinated omission").
Here message I{i} is due at C{start + i / rate}; a message that cannot be
sent when due (the connection's pipeline is full, or its buffers are: flow
control) waits in a backlog that is only a range of indices, and keeps its
due time, so the wait counts in its latency.

One timer serves all connections: it wakes when the next message is due and
sends every message that is due by then, each stamped with its own due
time, so a high rate costs one wake-up per reactor turn rather than one
C{callLater} per message.  The reactor's timers are only as precise as
C{epoll_wait}'s millisecond; with C{spin} the timer wakes that much early
and then polls the reactor without sleeping (as C{benchmarks/loadgen.c}
does) until the message is due, so that the client's own lateness stays out
of the latencies it reports.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from uppercase.load.connection import ILoadConnection

__all__ = ["ClosedLoop", "OpenLoop", "Schedule"]


class Schedule:
    """
    What every schedule does.

    @ivar limit: most messages to send in all (0: no limit).
    @ivar scheduled: messages handed to connections so far.
    """

    mode = ""

    def __init__(self, clock: IReactorTime, limit: int = 0) -> None:
        self._clock = clock
        self.limit = limit
        self.scheduled = 0
        self.running = False
        self.exhausted = False
        self.onExhausted: Callable[[], None] = lambda: None

    def start(self, protocols: Iterable[ILoadConnection]) -> None:
        """
        Start sending on C{protocols} (the connections open now).
        """
        self.running = True

    def stop(self) -> None:
        """
        Send nothing more.
        """
        self.running = False

    def room(self, protocol: ILoadConnection) -> None:
        """
        C{protocol} can take more messages (it connected, a reply came, or
        its buffers drained).
        """

    def add(self, protocol: ILoadConnection) -> None:
        """
        C{protocol} connected after the start (the closed loop needs to
        know no more than L{room} tells it).
        """

    def remove(self, protocol: ILoadConnection) -> None:
        """
        C{protocol} is gone.
        """

    @property
    def backlog(self) -> int:
        """
        Messages due and not yet sent (only an open loop has any).
        """
        return 0

    def _left(self, wanted: int) -> int:
        """
        How many of C{wanted} messages the limit allows.
        """
        return min(wanted, self.limit - self.scheduled) if self.limit else wanted

    def _handed(self, count: int) -> None:
        """
        Count C{count} messages handed out; once the limit is reached, say
        so (on the next turn, not from inside a protocol's callback).
        """
        self.scheduled += count
        if self.limit and self.scheduled >= self.limit and not self.exhausted:
            self.exhausted = True
            self._clock.callLater(0, self.onExhausted)


class ClosedLoop(Schedule):
    """
    Each connection sends as soon as its pipeline has room: the latencies
    are service times, and a stalled server shows as a lower rate.
    """

    mode = "closed"

    def start(self, protocols: Iterable[ILoadConnection]) -> None:
        super().start(protocols)
        for protocol in list(protocols):
            self.room(protocol)

    def room(self, protocol: ILoadConnection) -> None:
        if not self.running:
            return
        wanted = protocol.room()
        if wanted <= 0:
            return
        count = self._left(wanted)
        if count > 0:
            self._handed(count)
            protocol.send(count, self._clock.seconds())


class OpenLoop(Schedule):
    """
    C{rate} messages a second in all, spread over the connections in turn,
    each latency measured from the message's due time; with C{duration},
    only those due before its end (counted from the start).
    """

    mode = "open"

    def __init__(
        self,
        clock: IReactorTime,
        rate: float,
        limit: int = 0,
        spin: float = 0.0,
        duration: float = 0.0,
    ) -> None:
        super().__init__(clock, limit)
        self.rate = rate
        self.duration = duration
        self.spin = spin
        self.startedAt = 0.0
        self._due = 0
        self._protocols: list[ILoadConnection] = []
        self._cursor = 0
        self._timer: IDelayedCall | None = None
        self.onSkipped: Callable[[int], None] = lambda count: None

    @property
    def backlog(self) -> int:
        """
        Messages due and not yet sent.
        """
        return self._due - self.scheduled

    @property
    def lastIndex(self) -> int | None:
        """
        How many messages fall due in all (L{None}: no end): C{limit}, or
        with a C{duration} those due before its end -- at 100 messages/s
        for 2 s, the 200 due at 0.00 ... 1.99 s, not one at 2.00 s.
        """
        counts = []
        if self.limit:
            counts.append(self.limit)
        if self.duration:
            # (The same slack as in _tick, the other way.)
            counts.append(math.ceil(self.duration * self.rate - 1e-6))
        return min(counts) if counts else None

    def dueTime(self, index: int) -> float:
        """
        When message C{index} (from 0) falls due.
        """
        return self.startedAt + index / self.rate

    def start(self, protocols: Iterable[ILoadConnection]) -> None:
        super().start(protocols)
        self._protocols = list(protocols)
        self.startedAt = self._clock.seconds()
        self._tick()

    def add(self, protocol: ILoadConnection) -> None:
        """
        Take C{protocol} (connected after the start) in turn too.
        """
        if protocol not in self._protocols:
            self._protocols.append(protocol)

    def remove(self, protocol: ILoadConnection) -> None:
        """
        Leave C{protocol} (gone) out from now on.
        """
        if protocol in self._protocols:
            self._protocols.remove(protocol)

    def stop(self) -> None:
        super().stop()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def room(self, protocol: ILoadConnection) -> None:
        if self.running and self.backlog > 0:
            self._dispatch()

    def _tick(self) -> None:
        self._timer = None
        if not self.running:
            return
        now = self._clock.seconds()
        # (A millionth of a message's interval of slack: the clock's float
        # arithmetic must not leave the message due now for a timer of 0.)
        due = math.floor((now - self.startedAt) * self.rate + 1e-6) + 1
        last = self.lastIndex
        if last is not None:
            due = min(due, last)
        if due > self._due:
            self._due = due
        self._dispatch()
        if last is not None and self._due >= last:
            return  # everything is due: the rest is up to room()
        nextDue = self.dueTime(self._due)
        delay = nextDue - self._clock.seconds()
        if delay > self.spin:
            self._timer = self._clock.callLater(delay - self.spin, self._tick)
        else:
            self._timer = self._clock.callLater(0, self._tick)

    def _dispatch(self) -> None:
        """
        Hand the due messages to the connections with room, in turn; what
        finds no room stays in the backlog.  With no connection at all, the
        due messages are skipped (see L{onSkipped}).
        """
        protocols = self._protocols
        count = len(protocols)
        if not count:
            # No connection at all (a prober waiting to reconnect): what is
            # due now can never be sent on time; it is counted, not queued.
            skipped = self._due - self.scheduled
            if skipped > 0:
                self._handed(skipped)
                self.onSkipped(skipped)
            return
        misses = 0
        while self.scheduled < self._due and misses < count:
            protocol = protocols[self._cursor % count]
            self._cursor += 1
            room = protocol.room()
            if room <= 0:
                misses += 1
                continue
            misses = 0
            index = self.scheduled
            share = min(room, math.ceil((self._due - index) / count))
            self._handed(share)
            protocol.send(share, self.dueTime(index), 1 / self.rate)
