"""
The faults on a live connection: L{FaultyEcho}, mixed before a server echo
class (L{uppercase.server._factory}) for the connections of a factory that
has faults, applies what the connection drew (L{uppercase.server._faults})
as the pure plan (L{uppercase.server._faultplan}) says.

A connection that drew no fault becomes the plain server echo class at
once, in C{connectionMade}: its data path is exactly the one without
faults.  One that drew some sends its replies through a
L{ReplySchedule<uppercase.server._faultplan.ReplySchedule>}: what waits
there is bounded (past L{QUEUE_BOUND} bytes, reading from the peer pauses
until it drains), and the echo's half-close and graceful close wait for it.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.interfaces import IDelayedCall, ITCPTransport

from uppercase.net.interfaces import IDirectWriteTarget
from uppercase.net.peer import socketPath
from uppercase.net.tcpinfo import unsentInKernel
from uppercase.net.transport import pendingBytes, resetConnection
from uppercase.server._faultplan import ConnectionFaults

__all__ = ["QUEUE_BOUND", "RESET_POLL", "RESET_WAIT", "FaultyEcho", "listenerNames"]

QUEUE_BOUND = 65536
"""Reply bytes a connection may hold back (latency, bandwidth, slicer,
delay-accept) before reading from its peer pauses; it resumes below half."""

RESET_POLL = 0.01
RESET_WAIT = 2.0
"""A C{reset} after a size waits for the bytes before it to be taken by the
peer (checked every L{RESET_POLL} seconds), at most L{RESET_WAIT} seconds:
a reset drops whatever the kernel still holds."""


def _setNoDelay(transport: Any) -> None:
    """
    Turn Nagle's algorithm off on a TCP transport whose replies a fault
    holds back: a reply written while the one before it is not yet
    acknowledged would otherwise wait for the peer's next segment (its
    delayed ACK, or its next message), and leave later than the fault says.
    """
    if ITCPTransport.providedBy(transport):
        try:
            transport.setTcpNoDelay(True)
        except OSError:
            pass  # a UNIX socket, which Twisted 24.7 calls a TCP transport


def listenerNames(transport: Any) -> set[str]:
    """
    What names the listener that accepted C{transport}'s connection, as a
    fault's C{on} may say it: its port, or its UNIX socket's path (for a
    connection behind a PROXY header, the listener's, not the header's).
    """
    names = set()
    candidates = [transport]
    target = IDirectWriteTarget(transport, None)
    if target is not None:
        candidates.append(target.directWriteTarget())
    for candidate in candidates:
        try:
            host = candidate.getHost()
        except Exception:
            continue
        port = getattr(host, "port", None)
        if isinstance(port, int):
            names.add(str(port))
        path = socketPath(host)
        if path:
            names.add(path)
    return names


class FaultyEcho:
    """
    A server echo with faults (mixed before a L{ServerEcho
    <uppercase.server._factory.ServerEcho>} class, whose C{send} it puts its
    schedule in front of).

    @ivar faults: what this connection drew.
    @ivar faultKinds: their kinds, for the close line.
    """

    # What the echo it is mixed with has:
    factory: Any
    transport: Any
    send: Callable[[bytes], None]
    echoed: int
    discarded: int
    closing: bool
    peerFinished: bool
    drains: int
    releaseThrottle: Callable[[], None]

    faults: ConnectionFaults
    faultKinds: tuple[str, ...] = ()
    _write: Callable[[bytes], None]
    _timer: IDelayedCall | None = None
    _ended: str | None = None
    _discarding = False
    _holdUntil = 0.0
    _afterDrain: Callable[[], None] | None = None
    _timers: list[IDelayedCall]
    _pausedBy: set[str]

    def connectionMade(self) -> None:
        super().connectionMade()  # type: ignore[misc]
        factory = self.factory
        clock = factory.clock
        drawn = factory.faults.draw(listenerNames(self.transport), clock.seconds())
        if drawn is None:
            # Nothing drawn: from now on, the plain server echo.
            self.__class__ = factory.protocolClass
            return
        self.faults = drawn
        self.faultKinds = drawn.kinds
        self._pausedBy = set()
        self._timers = []
        if drawn.refuse:
            self.closing = True
            self.releaseThrottle()
            self.transport.loseConnection()
            return
        self._write = self.send
        self.send = self._faultSend
        if drawn.holdsBack:
            _setNoDelay(self.transport)
        for seconds, kind in drawn.timed:
            self._timers.append(clock.callLater(seconds, self._end, kind))
        if drawn.schedule.limitReached:
            # After 0 bytes: at once.
            self._end(drawn.limitKind or "")

    def dataReceived(self, data: bytes) -> None:
        if self._discarding:
            self.discarded += len(data)
            return
        super().dataReceived(data)  # type: ignore[misc]

    def _faultSend(self, reply: bytes) -> None:
        schedule = self.faults.schedule
        reply = self.faults.corrupt(reply)
        queued = schedule.push(reply, self.factory.clock.seconds())
        if queued < len(reply):
            # Past the limit: dropped, not echoed (the echo adds the whole
            # chunk to echoed once this returns).
            self.echoed -= len(reply) - queued
            self.discarded += len(reply) - queued
        self._pump()

    def _pump(self) -> None:
        """
        Write what is due, and call again when more will be.
        """
        if self._ended in ("stall", "reset") or self.transport is None:
            return
        clock = self.factory.clock
        now = clock.seconds()
        schedule = self.faults.schedule
        if now < self._holdUntil:
            self._wakeAt(self._holdUntil, now)
            return
        while True:
            data = schedule.take(now)
            if not data:
                break
            self._write(data)
        if schedule.limitReached and self._ended is None:
            self._end(self.faults.limitKind or "")
            return
        if schedule.queued > QUEUE_BOUND:
            self._pause("queue")
        elif schedule.queued <= QUEUE_BOUND // 2:
            self._resume("queue")
        due = schedule.nextTime()
        if due is not None:
            self._wakeAt(due, now)
        elif self._afterDrain is not None:
            then, self._afterDrain = self._afterDrain, None
            then()

    def _wakeAt(self, when: float, now: float) -> None:
        timer = self._timer
        if timer is not None and timer.active():
            if timer.getTime() == when:
                return
            timer.cancel()
        self._timer = self.factory.clock.callLater(max(0.0, when - now), self._wake)

    def _wake(self) -> None:
        self._timer = None
        self._pump()

    def _end(self, kind: str) -> None:
        """
        The fault C{kind} ends the replies (after its size or its time).
        """
        if self._ended is not None or self.transport is None:
            return
        self._ended = kind
        if kind == "close":
            self.finish()
        elif kind == "blackhole":
            self._discarding = True
            self._dropQueued()
        elif kind == "stall":
            self._cancelTimer()
            self._pause("stall")
        elif kind == "reset":
            self._cancelTimer()
            if self.faults.schedule.limitReached:
                self._resetWhenTaken(self.factory.clock.seconds() + RESET_WAIT)
            else:
                resetConnection(self.transport)

    def _resetWhenTaken(self, deadline: float) -> None:
        transport = self.transport
        if transport is None or getattr(transport, "disconnected", False):
            return
        clock = self.factory.clock
        if pendingBytes(transport) in (0, None) and unsentInKernel(transport) in (0, None):
            resetConnection(transport)
        elif clock.seconds() >= deadline:
            resetConnection(transport)
        else:
            self._timers.append(clock.callLater(RESET_POLL, self._resetWhenTaken, deadline))

    def _dropQueued(self) -> None:
        dropped = self.faults.schedule.drop()
        self.echoed -= dropped
        self.discarded += dropped
        self._cancelTimer()
        self._resume("queue")

    def _pause(self, reason: str) -> None:
        if not self._pausedBy:
            self.transport.pauseProducing()
        self._pausedBy.add(reason)

    def _resume(self, reason: str) -> None:
        if reason not in self._pausedBy:
            return
        self._pausedBy.discard(reason)
        if not self._pausedBy:
            self.transport.resumeProducing()

    def pauseProducing(self) -> None:
        """
        The transport's write buffer is full.
        """
        self._pause("buffer")

    def resumeProducing(self) -> None:
        """
        The transport's write buffer drained.
        """
        self.drains += 1
        self._resume("buffer")

    def readConnectionLost(self) -> None:
        """
        The peer ended its side: what is owed is sent (after the
        C{slow-close} delay, if drawn), then the connection closes.
        """
        self.peerFinished = True
        self.closing = True
        self.releaseThrottle()
        transport = self.transport
        if self.faults.slowClose:
            self._holdUntil = self.factory.clock.seconds() + self.faults.slowClose
        self._afterDrain = transport.loseConnection
        if self._ended in ("stall", "reset") or (
            self.faults.schedule.queued == 0 and not self._holdUntil
        ):
            self._afterDrain = None
            transport.loseConnection()
            return
        if self.faults.schedule.queued == 0:
            self._wakeAt(self._holdUntil, self.factory.clock.seconds())
            return
        self._pump()

    def finish(self, inputMayWait: bool = True) -> None:
        """
        Close gracefully (see L{StreamEcho.finish
        <uppercase.echo._stream.StreamEcho.finish>}) once the replies held
        back have left; what the peer sends meanwhile is discarded.
        """
        if self.closing or self._afterDrain is not None:
            return
        parent = super().finish  # type: ignore[misc]
        if (
            not hasattr(self, "faults")
            or self.faults.schedule.queued == 0
            or self._ended in ("stall", "reset")
        ):
            parent(inputMayWait)
            return
        self._discarding = True
        self._afterDrain = lambda: parent(inputMayWait)

    def _cancelTimer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def connectionLost(self, reason: Any = None) -> None:
        self._cancelTimer()
        for timer in getattr(self, "_timers", ()):
            if timer.active():
                timer.cancel()
        self._afterDrain = None
        if reason is None:
            super().connectionLost()  # type: ignore[misc]
        else:
            super().connectionLost(reason)  # type: ignore[misc]
