"""
A load run: open the connections (a bounded number of attempts at once,
failures counted by kind and not fatal), start the schedule once they are
up, measure after the warm-up, stop after the duration or the count, wait
for the replies in flight, close, and hand a L{RunResult} to the reports.

Once a second it ends an interval: checks time-outs, reads C{TCP_INFO},
and tells its observer (the progress line, C{--json}, the log).  With
C{reconnect} (the twistd prober), a lost or refused connection is tried
again with backoff, as C{ClientService} does.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from twisted.application.internet import backoffPolicy
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IProtocol, IProtocolFactory, IReactorTime
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from uppercase.client._connect import (
    describeConnectFailure,
    errorKind,
    isCancellation,
    isWorthRetrying,
)
from uppercase.client._datagram import HEADER_SIZE, DatagramCounts
from uppercase.client._ending import TIMED_OUT, EarlyEnd
from uppercase.client._settings import ClientSettings
from uppercase.client._udp import isDatagram
from uppercase.client._verifier import Mismatch, echoHint
from uppercase.load.connection import ILoadConnection, Owner
from uppercase.load.datagram import DatagramConnection
from uppercase.load.payload import Payloads, StreamPattern, randomBlock
from uppercase.load.protocol import LoadProtocol
from uppercase.load.result import RunObserver, RunResult, Snapshot, buildResult, describeSettings
from uppercase.load.schedule import ClosedLoop, OpenLoop, Schedule
from uppercase.load.stats import LoadStats, describeMismatch
from uppercase.load.stream import StreamProtocol
from uppercase.net.tcpinfo import TCPInfo, readTCPInfo
from uppercase.proxy._send import proxyPreamble

__all__ = ["CONNECT_AT_ONCE", "LoadRun", "watchPeriod"]

log = Logger()

T = TypeVar("T")

CONNECT_AT_ONCE = 64
"""Most connection attempts pending at once: a thousand connections are
opened in waves, not as one burst of SYNs that overflows an accept queue."""


def watchPeriod(timeout: float) -> float:
    """
    How often a run looks for connections with no progress for C{timeout}
    seconds: a quarter of it, so that a time-out is told within
    1.25 C{timeout}, but at most each second (the progress line's pace)
    and at least every 50 ms (a look goes over every connection).
    """
    return min(max(timeout / 4, 0.05), 1.0)


STOP_GRACE = 2.0
"""Seconds an interrupted run waits for its connections to close before
aborting them."""

SPIN = 0.002
"""How early the open loop's timer wakes before a message is due, to poll
without sleeping until it is (see L{uppercase.load.schedule})."""

Connect = Callable[[IProtocolFactory], "Deferred[IProtocol]"]
"""Connect a factory (bounded by the time-out), as L{connectWithin} does."""


class _OneProtocol(Factory):
    noisy = False

    def __init__(self, protocol: LoadProtocol | StreamProtocol | DatagramConnection) -> None:
        self._protocol = protocol

    def buildProtocol(self, addr: IAddress | None) -> Any:
        # Any: a DatagramConnection is no Protocol (the UDP connect takes it
        # as it is, L{uppercase.load.datagram.datagramConnect}).
        return self._protocol


class LoadRun(Owner):
    """
    One load run (or the prober, with C{reconnect}).

    @ivar stats: its counts.
    @ivar protocols: the connections open now that can carry messages.
    @ivar opening: the connections open now whose TLS handshake is not
        over yet.
    @ivar tcp: the last C{TCP_INFO} read per connection number.
    """

    def __init__(
        self,
        settings: ClientSettings,
        clock: IReactorTime,
        connect: Connect,
        observer: RunObserver,
        *,
        reconnect: bool = False,
        spin: float = 0.0,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._connect = connect
        self._observer = observer
        self._reconnect = reconnect
        self.stats = LoadStats(self._mismatched, self._endedEarly)
        self.protocols: list[ILoadConnection] = []
        self.opening: list[ILoadConnection] = []
        self._downSince: float | None = None
        self._down: list[tuple[float, float]] = []
        self.tcp: dict[int, TCPInfo | None] = {}
        self._preamble = proxyPreamble(settings.sendProxy)
        if settings.stream:
            self._block = randomBlock(settings.seed)
            self.schedule: Schedule = ClosedLoop(clock, 0)
        else:
            self._payloads = Payloads(
                settings.payload, settings.size, settings.seed, settings.message, settings.plain
            )
            if settings.rate:
                # Its duration includes the warm-up: it starts when the run begins.
                length = settings.warmup + settings.duration if settings.duration else 0.0
                openLoop = OpenLoop(clock, settings.rate, settings.limit, spin, length)
                openLoop.onSkipped = self._skipped
                self.schedule = openLoop
            else:
                self.schedule = ClosedLoop(clock, settings.limit)
        self.schedule.onExhausted = self.stop
        if isDatagram(settings.connect):
            self.stats.datagrams = DatagramCounts()
        self._payloadsAfterHeader: Payloads | None = None
        self._next = 1
        self.connectedCount = 0
        self._pending = 0
        self._attemptsUnderWay: set[Deferred[Any]] = set()
        self._attempts: dict[int, int] = {}
        self._retries: dict[int, Any] = {}
        self._backoff = backoffPolicy()
        self.startedAt = 0.0
        self.begunAt: float | None = None
        self.stoppedAt: float | None = None
        self._stopping = False
        self._interrupted: int | None = None
        self._failure: str | None = None
        self._connectFailure: Failure | None = None
        self._failingSince: float | None = None
        self._timers: list[Any] = []
        self._ticker = LoopingCall(self._interval)
        self._ticker.clock = clock
        self._watchdog = LoopingCall(self._watch)
        self._watchdog.clock = clock
        self._lastCounts = (0, 0, 0.0)
        self.done: Deferred[RunResult] = Deferred()

    # Starting.

    def start(self) -> Deferred[RunResult]:
        """
        Connect and run.

        @return: fires with the result once the run is over (never fails).
        """
        self.startedAt = self._clock.seconds()
        self._lastCounts = (0, 0, self.startedAt)
        self._observer.started(self)
        self._ticker.start(1.0, now=False)
        self._watchdog.start(watchPeriod(self.settings.timeout), now=False)
        self._openMore()
        return self.done

    def _openMore(self) -> None:
        while (
            self._pending < CONNECT_AT_ONCE
            and self._next <= self.settings.connections
            and not self._stopping
        ):
            number = self._next
            self._next += 1
            self._attempt(number)

    @property
    def _datagramPayloads(self) -> Payloads:
        """
        Over UDP, what follows each datagram's header: C{--size} in all.
        """
        if self._payloadsAfterHeader is None:
            settings = self.settings
            self._payloadsAfterHeader = Payloads(
                settings.payload, settings.size - HEADER_SIZE, settings.seed, settings.message
            )
        return self._payloadsAfterHeader

    def _build(self, number: int) -> LoadProtocol | StreamProtocol | DatagramConnection:
        settings = self.settings
        if settings.stream:
            return StreamProtocol(
                number,
                StreamPattern(settings.seed, number, self._block, settings.plain),
                self.stats,
                self._clock,
                self,
                settings.size,
                settings.limit * settings.size,
                self._preamble,
            )
        if self.stats.datagrams is not None:
            return DatagramConnection(
                number,
                self._datagramPayloads,
                self.stats,
                self.stats.datagrams,
                self._clock,
                self,
                settings.timeout,
                settings.effectivePipeline,
                settings.plain,
            )
        return LoadProtocol(
            number,
            self._payloads,
            self.stats,
            self._clock,
            self,
            settings.effectivePipeline,
            self._preamble,
        )

    def _attempt(self, number: int) -> None:
        self._retries.pop(number, None)
        self._pending += 1
        attempt = self._connect(_OneProtocol(self._build(number)))
        self._attemptsUnderWay.add(attempt)
        attempt.addBoth(self._attemptOver, attempt)
        attempt.addCallbacks(self._attempted, self._attemptFailed, errbackArgs=(number,))

    def _attemptOver(self, result: T, attempt: Deferred[Any]) -> T:
        self._attemptsUnderWay.discard(attempt)
        return result

    def _attempted(self, protocol: object) -> None:
        self._pending -= 1
        self._openMore()
        self._maybeBegin()

    def _attemptFailed(self, failure: Failure, number: int) -> None:
        self._pending -= 1
        if not (isCancellation(failure) and self._stopping):
            self.stats.error(errorKind(failure))
            self._connectFailure = self._connectFailure or failure
            now = self._clock.seconds()
            if self._failingSince is None:
                self._failingSince = now
            failing = now - self._failingSince
            # A finite run gives up on a port that refuses for --timeout
            # seconds with no connection up; a prober keeps trying.
            finite = bool(self.settings.limit or self.settings.duration)
            givingUp = finite and not self.protocols and failing >= self.settings.timeout
            if self._reconnect and (givingUp or not isWorthRetrying(failure)):
                reason = describeConnectFailure(failure)
                if givingUp:
                    reason += f" (for {failing:.0f} s)"
                self._fail(f"cannot connect to {self.settings.connect}: {reason}")
            elif self._reconnect:
                log.warn(
                    "Cannot connect to {endpoint}: {reason}",
                    endpoint=self.settings.connect,
                    reason=describeConnectFailure(failure),
                )
                self._retry(number)
        self._openMore()
        self._maybeBegin()
        self._maybeFinish()

    def _retry(self, number: int) -> None:
        if self._stopping:
            return
        attempts = self._attempts.get(number, 0) + 1
        self._attempts[number] = attempts
        delay = self._backoff(attempts)
        self._retries[number] = self._clock.callLater(delay, self._attempt, number)

    def _maybeBegin(self) -> None:
        """
        Start sending once every first attempt is over.
        """
        if self.begunAt is not None or self._stopping:
            return
        if self._next <= self.settings.connections or self._pending:
            return
        if not self.protocols and not self._reconnect:
            return  # _maybeFinish ends the run
        self._begin()

    def _begin(self) -> None:
        settings = self.settings
        now = self._clock.seconds()
        self.begunAt = now
        self.stats.measureFrom = now + settings.warmup
        if settings.duration:
            self._later(settings.warmup + settings.duration, self.stop)
        if not self.protocols:
            self._downSince = now  # a prober that begins with no connection
        for protocol in self.protocols:
            protocol.start()
        self.schedule.start(self.protocols)

    # What the connections tell.

    def opened(self, connection: ILoadConnection) -> None:
        self.opening.append(connection)

    def connected(self, connection: ILoadConnection) -> None:
        if connection in self.opening:
            self.opening.remove(connection)
        self.protocols.append(connection)
        if self._downSince is not None:
            self._down.append((self._downSince, self._clock.seconds()))
            self._downSince = None
        self.connectedCount += 1
        self.tcp[connection.number] = readTCPInfo(connection.transport)
        self._failingSince = None
        if self._reconnect:
            self._attempts.pop(connection.number, None)
        if self._stopping:
            # Too late to carry anything: closed at once (aborted if the
            # run was interrupted or failed), not left open until a
            # time-out notices it.
            if self._interrupted is not None or self._failure is not None:
                connection.transport.abortConnection()
            else:
                connection.close()
            return
        if self.begunAt is None:
            # On TLS, after the handshake: the first attempts may all be over.
            self._maybeBegin()
            return
        connection.start()
        self.schedule.add(connection)
        self.schedule.room(connection)

    def room(self, connection: ILoadConnection) -> None:
        self.schedule.room(connection)

    def lost(self, connection: ILoadConnection, reason: Failure) -> None:
        if connection in self.protocols:
            self.protocols.remove(connection)
        if connection in self.opening:
            self.opening.remove(connection)
        self.schedule.remove(connection)
        clean = self._countLoss(connection, reason)
        if self._reconnect and not self._stopping:
            if not self.protocols and self.begunAt is not None and self._downSince is None:
                self._downSince = self._clock.seconds()
            self._retry(connection.number)
        elif not self.protocols and not self.opening and not self._pending and not self._stopping:
            if clean:
                self.stop()  # every stream sent what it had to
            else:
                # (Before the run began too: on TLS, every handshake failed.)
                kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.stats.errors.items()))
                first = f"; first: {self.stats.ends[0]}" if self.stats.ends else ""
                self._fail(f"every connection was lost ({kinds}){first}")
        self._maybeFinish()

    def _countLoss(self, connection: ILoadConnection, reason: Failure) -> bool:
        """
        Count what a lost connection lost.

        @return: whether it ended as it should have.
        """
        if connection.timedOut:
            return False
        return connection.countLoss(reason, self._interrupted is not None)

    def _skipped(self, count: int) -> None:
        # Never sent: counted as such, not as lost (the loss of the
        # connection is the error, counted when it happened).
        self.stats.notSent += count

    def _mismatched(self, mismatch: Mismatch) -> None:
        if self._reconnect:
            log.error("Wrong reply: {mismatch}", mismatch=describeMismatch(mismatch))
        if self.settings.failFast:
            # On the next turn: the protocol is in the middle of a chunk.
            hint = echoHint(mismatch, self.settings.plain)
            self._clock.callLater(0, self._fail, f"wrong reply: {describeMismatch(mismatch)}{hint}")

    def _endedEarly(self, end: EarlyEnd) -> None:
        if self._reconnect:
            log.warn(
                "Connection {connection} ended early: {detail}",
                connection=end.connection,
                detail=end.detail(),
            )
        if self.settings.failFast:
            # The first reason wins at once; the rest on the next turn: the
            # connection is in the middle of its loss.
            self._failure = self._failure or str(end)
            self._clock.callLater(0, self._fail, str(end))

    # Time.

    def _later(self, delay: float, f: Callable[[], None]) -> None:
        self._timers.append(self._clock.callLater(delay, f))

    def _watch(self) -> None:
        self._checkTimeouts(self._clock.seconds())

    def _interval(self) -> None:
        now = self._clock.seconds()
        self._readTCPInfo()
        stats = self.stats
        latency = stats.roll()
        verified, measuredBytes, then = self._lastCounts
        elapsed = max(now - then, 1e-9)
        self._lastCounts = (stats.measured, stats.measuredBytes, now)
        self._observer.interval(
            Snapshot(
                elapsed=now - self.startedAt,
                phase=self.phase(now),
                connections=len(self.protocols),
                sent=stats.sent,
                verified=stats.verified + stats.streamBytes,
                failed=stats.failed,
                errors=stats.errorCount,
                errorsByKind=dict(stats.errors),
                messagesPerSecond=(stats.measured - verified) / elapsed,
                megabytesPerSecond=(stats.measuredBytes - measuredBytes) / elapsed / 1e6,
                latency=latency,
                backlog=self.schedule.backlog,
            )
        )

    def phase(self, now: float) -> str:
        """
        C{connecting}, C{warmup}, C{measuring} or C{stopping}.
        """
        if self._stopping:
            return "stopping"
        if self.begunAt is None:
            return "connecting"
        return "warmup" if now < self.stats.measureFrom else "measuring"

    def _checkTimeouts(self, now: float) -> None:
        timeout = self.settings.timeout
        for protocol in list(self.protocols):
            if protocol.waiting and now - protocol.lastProgress > timeout:
                protocol.timedOut = True
                end = protocol.earlyEnd(TIMED_OUT)
                unanswered = protocol.dropInFlight()
                self.stats.lost += unanswered
                self.stats.ended(end)
                protocol.transport.abortConnection()
        for connection in list(self.opening):
            if now - connection.lastProgress > timeout:
                connection.timedOut = True
                self.stats.error("handshake timeout")
                connection.transport.abortConnection()

    def _readTCPInfo(self) -> None:
        for protocol in self.protocols:
            info = readTCPInfo(protocol.transport)
            if info is not None or protocol.number not in self.tcp:
                self.tcp[protocol.number] = info

    # Stopping.

    def stop(self) -> None:
        """
        Send nothing more; close each connection once its replies are in
        (bounded by the time-out, checked every L{watchPeriod}).
        """
        if self._stopping:
            return
        self._stopping = True
        self.stoppedAt = self._clock.seconds()
        self.schedule.stop()
        self._readTCPInfo()
        for call in self._retries.values():
            if call.active():
                call.cancel()
        self._retries.clear()
        for attempt in list(self._attemptsUnderWay):
            attempt.cancel()  # its failure, a cancellation while stopping, is no error
        for protocol in list(self.protocols):
            protocol.close()
        for connection in list(self.opening):
            # It carried nothing: given up on, its loss no error.
            connection.timedOut = True
            connection.transport.abortConnection()
        if self.protocols:
            self._later(self.settings.timeout, self._drainOver)
        self._maybeFinish()

    def _drainOver(self) -> None:
        """
        The replies still out L{stop}'s time-out later will not be waited
        for: each connection still open is cut off, its messages in flight
        counted as lost, and the run fails.  (A drip of right bytes keeps
        each reply's own time-out from firing; this bounds the whole wait.)
        """
        if self._interrupted is not None:
            return  # the interrupt's own grace applies
        for protocol in list(self.protocols):
            protocol.timedOut = True
            self.stats.lost += protocol.dropInFlight()
            if self.stats.datagrams is None:  # over UDP, loss: --max-loss judges it
                self.stats.error("cut off after the end")
            protocol.transport.abortConnection()
        self._maybeFinish()

    def interrupt(self, signum: int) -> None:
        """
        Stop early (a signal): close the connections, aborting those still
        open after L{STOP_GRACE} seconds; a second interrupt aborts them at
        once.
        """
        if self.done.called:
            return
        if self._interrupted is not None:
            self._abortAll()
            return
        self._interrupted = signum
        self.stop()
        self._later(STOP_GRACE, self._abortAll)

    def _fail(self, reason: str) -> None:
        if self._failure is None:
            self._failure = reason
        self.stop()
        self._abortAll()

    def _abortAll(self) -> None:
        for protocol in list(self.protocols):
            protocol.transport.abortConnection()
        self._maybeFinish()

    def _maybeFinish(self) -> None:
        if self.done.called:
            return
        if self.protocols or self.opening or self._pending:
            return
        if self._stopping or (self.begunAt is None and self._next > self.settings.connections):
            if not self._reconnect or self._stopping:
                self._finish()

    def _finish(self) -> None:
        if self._ticker.running:
            self._ticker.stop()
        if self._watchdog.running:
            self._watchdog.stop()
        for timer in self._timers:
            if timer.active():
                timer.cancel()
        self.stats.roll()
        result = buildResult(self, self._failure, self._connectFailure, self._interrupted)
        self._observer.finished(result)
        self.done.callback(result)

    def describe(self) -> str:
        """
        What this run does, in a line.
        """
        return describeSettings(self.settings)

    def downtime(self, start: float, end: float) -> float:
        """
        Seconds between C{start} and C{end} with no connection up, since
        the run began (only a prober, which reconnects, has any: any other
        run ends when its last connection goes).
        """
        spans = list(self._down)
        if self._downSince is not None:
            spans.append((self._downSince, self._clock.seconds()))
        return sum(max(min(b, end) - max(a, start), 0.0) for a, b in spans)
