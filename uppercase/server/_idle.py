"""
The idle timeout: one timer for all connections, and nothing per chunk.

Resetting a per-connection timer on every received chunk costs a heap
operation per chunk; one timer per connection costs memory per connection.
Instead a single sweep runs every C{timeout / IDLE_CHECKS} seconds while any
connection is watched, and compares each one's activity counter (bytes
received, write-buffer drains, the kernel's send queue) with what it saw
before.  A connection whose
counter has not moved since a sweep at least C{timeout} seconds ago is idle:
it is closed between 1 and 1 + 1/L{IDLE_CHECKS} times the timeout after its
last activity.  The sweep measures time, not sweeps, so a clock that jumps
(or a reactor that stalls) still closes what is due.
"""

from __future__ import annotations

from typing import Callable, Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime

IDLE_CHECKS = 4
"""Sweeps per idle timeout."""


class Active(Protocol):
    """
    What the sweep needs of a connection.
    """

    def activity(self) -> object:
        """
        A value (compared with C{!=}) that changes whenever the connection
        does something.
        """


class _Seen:
    """
    A watched connection's activity when last seen to change, and when.
    """

    __slots__ = ("activity", "at")

    def __init__(self, activity: object, at: float) -> None:
        self.activity = activity
        self.at = at


class IdleSweeper:
    """
    Watch connections; call C{onIdle(connection, idleSeconds)} once for each
    that stays inactive for C{timeout} seconds, then stop watching it.
    C{idleSeconds} is the time since the sweep that last saw it active: at
    least C{timeout}, and at most one sweep interval less than the truth.
    """

    def __init__(
        self,
        clock: IReactorTime,
        timeout: float,
        onIdle: Callable[[Active, float], None],
    ) -> None:
        self._clock = clock
        self._timeout = timeout
        self._interval = timeout / IDLE_CHECKS
        self._onIdle = onIdle
        self._watched: dict[Active, _Seen] = {}
        self._call: IDelayedCall | None = None
        self._due = 0.0

    def watch(self, connection: Active) -> None:
        """
        Start timing C{connection} (just connected); the sweep runs while
        anything is watched.
        """
        now = self._clock.seconds()
        self._watched[connection] = _Seen(connection.activity(), now)
        if self._call is None:
            self._due = now + self._interval
            self._call = self._clock.callLater(self._interval, self._sweep)

    def forget(self, connection: Active) -> None:
        """
        Stop timing C{connection} (closed, or being closed); no timer is
        left once nothing is watched.
        """
        self._watched.pop(connection, None)
        if not self._watched and self._call is not None:
            self._call.cancel()
            self._call = None

    def _sweep(self) -> None:
        self._call = None
        now = self._clock.seconds()
        # Activity seen now happened after the previous sweep: stamping it
        # with this sweep's due time (not the moment the reactor got round
        # to it) keeps the close on the sweep a whole timeout later.
        stamp = min(self._due, now)
        idle = []
        for connection, seen in self._watched.items():
            activity = connection.activity()
            if activity != seen.activity:
                seen.activity = activity
                seen.at = stamp
            elif now - seen.at >= self._timeout:
                idle.append((connection, now - seen.at))
        for connection, seconds in idle:
            self.forget(connection)
            self._onIdle(connection, seconds)
        if self._watched and self._call is None:
            # Sweeps keep their pace even when one runs late.
            self._due += self._interval
            if self._due <= now:
                self._due = now + self._interval
            self._call = self._clock.callLater(self._due - now, self._sweep)
