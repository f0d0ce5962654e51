"""
The idle timeout: one timer for all connections, and nothing per chunk.

Resetting a per-connection timer on every received chunk costs a heap
operation per chunk; one timer per connection costs memory per connection.
Instead a single sweep runs L{IDLE_CHECKS} times per timeout over the open
connections and compares each one's activity counter (bytes received, plus
write-buffer drains) with what it saw the time before.  A connection closes
after L{IDLE_CHECKS} sweeps in a row saw no activity: between 1 and
1 + 1/L{IDLE_CHECKS} times the timeout after its last activity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Collection

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

if TYPE_CHECKING:
    from .server import UppercaseProtocol

IDLE_CHECKS = 4
"""Sweeps per idle timeout."""


class IdleSweeper:
    """
    Sweep C{connections} every C{timeout / IDLE_CHECKS} seconds while any is
    open, calling C{onIdle} for each connection idle for a whole timeout.
    """

    def __init__(
        self,
        clock: IReactorTime,
        timeout: float,
        connections: Collection[UppercaseProtocol],
        onIdle: Callable[[UppercaseProtocol], None],
    ) -> None:
        self._connections = connections
        self._onIdle = onIdle
        self._interval = timeout / IDLE_CHECKS
        self._loop = LoopingCall(self._sweep)
        self._loop.clock = clock

    def watch(self, protocol: UppercaseProtocol) -> None:
        """
        Start timing C{protocol} (just connected), and sweeping if this is
        the first connection.
        """
        protocol.idleMark = protocol.activity()
        protocol.quietSweeps = -1  # the first sweep counts its arrival
        if not self._loop.running:
            self._loop.start(self._interval, now=False)

    def forget(self) -> None:
        """
        Stop sweeping once no connection is left (called after one closed).
        """
        if not self._connections and self._loop.running:
            self._loop.stop()

    def _sweep(self) -> None:
        idle = []
        for protocol in self._connections:
            activity = protocol.activity()
            if activity != protocol.idleMark:
                protocol.idleMark = activity
                protocol.quietSweeps = 0
            else:
                protocol.quietSweeps += 1
                # Exactly once: a connection being closed stays in the set
                # until its close completes.
                if protocol.quietSweeps == IDLE_CHECKS:
                    idle.append(protocol)
        for protocol in idle:
            self._onIdle(protocol)
