"""
Bounding the server's per-connection and per-chunk log lines, as refusals
are bounded (L{uppercase.server._refusals}): past a budget of lines a second, the
events of the rest of that second are counted, and summed in one line when
the second ends.

The data path pays a counter: the clock is read when a second's first line
is logged and when its budget runs out, a timer is set only for a second
whose budget ran out (to log its summary), and past the budget an event is
an addition.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

log = Logger(namespace="uppercase.server")

WINDOW = 1.0
"""Seconds over which lines are budgeted, and folded lines summed."""

CONNECTIONS_PER_SECOND = 100
"""Connections a second whose lines (opened, closed) are logged one by one;
past that, the rest of the second's are summed in one line."""

REQUESTS_PER_SECOND = 10
"""Requests a second to the metrics or control endpoint whose access-log
lines are logged one by one; past that, the rest of the second's are
counted in one line."""

CHANGES_PER_SECOND = 10
"""Changes a second (faults added, removed, cleared through C{--control};
a worker's faults replaced) logged one by one; past that, the rest of the
second's are counted, and the last of them logged with the count."""

CHUNKS_PER_SECOND = 1000
"""Received chunks a second logged one by one (without C{--quiet}); past
that, the rest of the second's are summed in one line."""


def _plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"


class LineBudget:
    """
    At most C{limit} lines in each window of L{WINDOW} seconds (a window
    starts with its first line); past that, L{admit} says no until the
    window ends, when L{summarize} is called.

    @ivar window: how many windows ran out of budget so far, to tell which
        one a folded event belongs to.
    """

    def __init__(self, clock: IReactorTime, limit: int) -> None:
        self._clock = clock
        self.limit = limit
        self._count = 0
        self._start = 0.0
        self.folding = False
        self.window = 0
        self._call: IDelayedCall | None = None
        self._hooked = False

    def admit(self) -> bool:
        """
        Whether the next line may be logged; if not, the caller counts its
        event for L{summarize}.
        """
        if self.folding:
            return False
        self._count += 1
        if self._count == 1:
            self._start = self._clock.seconds()
            return True
        if self._count <= self.limit:
            return True
        now = self._clock.seconds()
        if now - self._start >= WINDOW:
            # The budget lasted the whole window: this line opens the next.
            self._count, self._start = 1, now
            return True
        self.folding = True
        self.window += 1
        self.schedule(self._start + WINDOW - now)
        return False

    def schedule(self, delay: float = WINDOW) -> None:
        """
        Make sure L{summarize} is called within C{delay} seconds (for an
        event counted while no window is folding).
        """
        if self._call is not None:
            return
        self._call = self._clock.callLater(delay, self._end)
        addTrigger: Any = getattr(self._clock, "addSystemEventTrigger", None)
        if addTrigger is not None and not self._hooked:
            # On the reactor: the last second's summary is logged at
            # shutdown, after the connections have drained.
            self._hooked = True
            addTrigger("after", "shutdown", self.flush)

    def _end(self) -> None:
        self._call = None
        self.folding = False
        self._count = 0
        self.summarize()

    def flush(self) -> None:
        """
        Log the summary of what is counted now, and schedule nothing more.
        """
        if self._call is not None:
            self._call.cancel()
            self._end()

    def summarize(self) -> None:
        """
        Log what was counted instead of logged (subclasses say how).
        """


class RequestLog(LineBudget):
    """
    The budget of an HTTP endpoint's access-log lines (C{--metrics},
    C{--control}): L{REQUESTS_PER_SECOND} a second, the rest of the second
    counted and summed in one line, however fast a client asks.

    @ivar purpose: what the endpoint serves, as its lines name it.
    """

    def __init__(self, clock: IReactorTime, purpose: str, limit: int = REQUESTS_PER_SECOND) -> None:
        super().__init__(clock, limit)
        self.purpose = purpose
        self._folded = 0

    def folded(self) -> None:
        """
        Count a request whose line L{admit} refused.
        """
        self._folded += 1

    def summarize(self) -> None:
        if not self._folded:
            return
        count = self._folded
        log.info(
            "Folded {count:,} {purpose} "
            + _plural(count, "request")
            + " in the last second (past {limit:,} requests a second, their access-log lines"
            " are summed here)",
            count=count,
            purpose=self.purpose,
            limit=self.limit,
        )
        self._folded = 0


class ChangeLog(LineBudget):
    """
    The budget of lines that each say a change of state (a fault added or
    removed, the faults a worker has now): L{CHANGES_PER_SECOND} a second;
    past that, the rest of the second's are counted, and the last of them,
    which says how things stand, is logged when the second ends, with the
    count.

    @ivar logger: where the lines go.
    """

    def __init__(
        self, clock: IReactorTime, logger: Logger, limit: int = CHANGES_PER_SECOND
    ) -> None:
        super().__init__(clock, limit)
        self.logger = logger
        self._folded = 0
        self._last: tuple[str, dict[str, Any]] | None = None

    def say(self, format: str, **fields: Any) -> None:
        """
        Log C{format} with C{fields} (as C{Logger.info}) within the budget;
        past it, keep it as the last change of the second.
        """
        if self.admit():
            self.logger.info(format, **fields)
        else:
            self._folded += 1
            self._last = (format, fields)

    def summarize(self) -> None:
        if not self._folded or self._last is None:
            return
        format, fields = self._last
        count = self._folded
        self.logger.info(
            format
            + " (the last of {foldedChanges:,} "
            + _plural(count, "change")
            + " in the last second not logged one by one, past {foldedLimit:,} a second)",
            foldedChanges=count,
            foldedLimit=self.limit,
            **fields,
        )
        self._folded = 0
        self._last = None


class ConnectionLog(LineBudget):
    """
    The budget of connections whose lines (C{Connection from ...},
    C{... closed}, C{... lost}) are logged one by one:
    L{CONNECTIONS_PER_SECOND} a second.  A connection is logged or folded
    as a whole, from its first line to its last.
    """

    def __init__(self, clock: IReactorTime, limit: int = CONNECTIONS_PER_SECOND) -> None:
        super().__init__(clock, limit)
        self._reset()

    def _reset(self) -> None:
        self._connections = 0
        self._opened = 0
        self._closed = 0
        self._lost = 0

    def opened(self) -> int | None:
        """
        A connection opened: L{None} if its lines may be logged, otherwise
        the window it was folded in (to give L{closed}).
        """
        if self.admit():
            return None
        self._connections += 1
        self._opened += 1
        return self.window

    def closed(self, window: int, clean: bool) -> None:
        """
        A connection folded in C{window} closed, cleanly or not.
        """
        if window != self.window or not self.folding:
            # Opened in an earlier window: a connection of this one too.
            self._connections += 1
        if clean:
            self._closed += 1
        else:
            self._lost += 1
        self.schedule()

    def summarize(self) -> None:
        if not self._connections:
            return
        count = self._connections
        log.info(
            "Folded {count:,} "
            + _plural(count, "connection")
            + " in the last second: {opened:,} opened, {closed:,} closed cleanly, {lost:,} lost"
            " (past {limit:,} connections a second, their lines are summed here)",
            count=count,
            opened=self._opened,
            closed=self._closed,
            lost=self._lost,
            limit=self.limit,
        )
        self._reset()


class ChunkLog(LineBudget):
    """
    The budget of per-chunk C{Received ...} lines: L{CHUNKS_PER_SECOND} a
    second.
    """

    def __init__(self, clock: IReactorTime, limit: int = CHUNKS_PER_SECOND) -> None:
        super().__init__(clock, limit)
        self._chunks = 0
        self._bytes = 0

    def fold(self, size: int) -> None:
        """
        Count a chunk of C{size} bytes that L{admit} did not let be logged.
        """
        self._chunks += 1
        self._bytes += size

    def summarize(self) -> None:
        if not self._chunks:
            return
        chunks, size = self._chunks, self._bytes
        log.info(
            "Folded {chunks:,} received "
            + _plural(chunks, "chunk")
            + " in the last second ({size:,} "
            + _plural(size, "byte")
            + "; past {limit:,} chunks a second, they are summed here)",
            chunks=chunks,
            size=size,
            limit=self.limit,
        )
        self._chunks = self._bytes = 0
