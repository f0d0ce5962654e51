"""Logging refused connections once per burst, not once per connection."""

from __future__ import annotations

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

log = Logger(namespace="uppercase.server")

WINDOW = 1.0
"""Seconds over which refusals after the first are summed into one event."""


class RefusalLog:
    """
    The first refusal of a burst is logged at once, with its peer and
    reason; the ones that follow are counted and logged as one summary per
    L{WINDOW} seconds for as long as the burst lasts.  A flood of thousands
    of connections over a limit costs a line a second, not a line each.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._call: IDelayedCall | None = None
        self._count = 0
        self._reason = ""

    def refused(self, peer: str, reason: str) -> None:
        """
        Note one refused connection.
        """
        if self._call is None:
            log.warn("Refused connection from {peer}: {reason}", peer=peer, reason=reason)
            self._call = self._clock.callLater(WINDOW, self._summarize)
        else:
            self._count += 1
            self._reason = reason

    def _summarize(self) -> None:
        self._call = None
        if self._count:
            self._emit()
            self._call = self._clock.callLater(WINDOW, self._summarize)

    def _emit(self) -> None:
        # The word is part of the format, not a field: every field of an
        # event is data (the JSON log keeps them all).
        connections = "connection" if self._count == 1 else "connections"
        log.warn(
            "Refused {count} more " + connections + " in the last {window:g}s"
            " (latest reason: {reason})",
            count=self._count,
            window=WINDOW,
            reason=self._reason,
        )
        self._count = 0

    def flush(self) -> None:
        """
        Log what is pending now and schedule nothing more (on shutdown).
        """
        if self._call is not None:
            self._call.cancel()
            self._call = None
        if self._count:
            self._emit()
