"""
C{uppercase-client} in load mode: one L{LoadRun} on the reactor, its
progress on standard error, its summary (text or JSON lines) on standard
output, and an exit status: 0 only when every message was verified and
every threshold held; 1 otherwise, with the reason in one line on standard
error; 128 + N when interrupted by signal N; when standard output or error
cannot be written, the run ends at once as L{outputFailure} says (141,
quietly, for a closed pipe); 4 when C{--start-at} had passed by more than
its grace when the command came up (L{EXIT_LATE}).
"""

from __future__ import annotations

import signal
from typing import IO, Any, Sequence, cast

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IProtocolFactory
from twisted.python.failure import Failure

from uppercase.cli.options import outputFailure
from uppercase.client._connect import clientEndpoint, connectWithin
from uppercase.client._report import BinaryOutput, Output
from uppercase.client._settings import ClientSettings
from uppercase.client._udp import isDatagram
from uppercase.load.datagram import datagramConnect
from uppercase.load.metrics import clientMetricsFactory
from uppercase.load.report import JSONLoadReport, TextLoadReport
from uppercase.load.result import RunResult
from uppercase.load.run import SPIN, Connect, LoadRun
from uppercase.load.shard import Shard
from uppercase.load.startat import START_GRACE, TooLate, waitUntil
from uppercase.server._service import ListenError, reasonOf

__all__ = ["LoadCommand"]

EXIT_FAILURE = 1

EXIT_LATE = 4
"""The exit status of a run that came up too late for its C{--start-at}:
its own, so that a Job can tell it from a failed run."""


class LoadCommand:
    """
    One load run of the command.

    @ivar run: the run, once started.
    """

    def __init__(
        self,
        reactor: Any,
        settings: ClientSettings,
        out: BinaryOutput,
        err: IO[str],
        *,
        json: bool = False,
        command: str = "uppercase-client",
        live: bool | None = None,
        spin: float = SPIN,
        outputs: Sequence[Output] = (),
        shard: Shard | None = None,
        startAt: float | None = None,
        startGrace: float = START_GRACE,
    ) -> None:
        """
        @param outputs: C{out} and C{err}, those that are L{Output}s: the
            run ends at once when writing to one fails.
        @param shard: the shard of a run this is (its C{--json} summary
            says so); by default the whole of a run of one shard.
        @param startAt: when to start (Unix time, C{--start-at}), or
            L{None}: at once.
        @param startGrace: how late after C{startAt} it may still start
            (C{--start-grace}).
        """
        self._reactor = reactor
        self._settings = settings
        self._err = err
        self._command = command
        self._spin = spin
        self._report = (
            JSONLoadReport(out, err, live, shard) if json else TextLoadReport(out, err, live)
        )
        self._startAt = startAt
        self._startGrace = startGrace
        self._waiting: Deferred[None] | None = None
        self.run: LoadRun | None = None
        self._pendingSignal: int | None = None
        self._outputError: OSError | None = None
        for output in outputs:
            output.onFailure = self._outputFailed

    def start(self) -> Deferred[int]:
        """
        Run, at C{startAt} if given.

        @return: fires with the exit status once the run is over and its
            summary printed; never fails.
        """
        if self._startAt is None:
            return self._start()
        waiting = self._waiting = waitUntil(
            self._reactor, self._startAt, self._tell, self._startGrace
        )

        def started(_: None) -> Deferred[int]:
            return self._start()

        return cast("Deferred[int]", waiting.addCallbacks(started, self._notStarted))

    def _tell(self, line: str) -> None:
        try:
            self._err.write(line + "\n")
            self._err.flush()
        except OSError:
            pass

    def _notStarted(self, failure: Failure) -> int:
        self._waiting = None
        if failure.check(TooLate):
            self._say(str(failure.value))
            return EXIT_LATE
        failure.trap(CancelledError)
        if self._outputError is not None:
            status, line = outputFailure(self._outputError)
            if line is not None:
                self._say(line)
            return status
        signum = self._pendingSignal or signal.SIGINT
        self._say(f"interrupted by {signal.Signals(signum).name} before --start-at")
        return 128 + signum

    def _start(self) -> Deferred[int]:
        self._waiting = None
        settings = self._settings
        reactor = self._reactor
        connect: Connect
        if isDatagram(settings.connect):
            connect = datagramConnect(reactor, settings.connect)
        else:
            try:
                endpoint = clientEndpoint(reactor, settings.connect)
            except Exception as e:
                return self._failed(f"cannot connect to {settings.connect}: {e}")

            def connect(factory: IProtocolFactory) -> Deferred[Any]:
                return connectWithin(endpoint, factory, settings.timeout, reactor)

        self.run = LoadRun(settings, reactor, connect, self._report, spin=self._spin)
        ended: Deferred[int] = Deferred()
        if settings.metrics:
            listening = serverFromString(reactor, settings.metrics).listen(
                clientMetricsFactory(self.run, reactor)
            )

            def listened(port: Any) -> Deferred[RunResult]:
                assert self.run is not None
                done = self.run.start()
                done.addBoth(lambda result: (port.stopListening(), result)[1])
                return done

            def cannotListen(failure: Failure) -> Failure:
                ended.callback(
                    self._say(
                        str(ListenError(settings.metrics, reasonOf(failure.value), "metrics"))
                    )
                )
                return failure

            started = listening.addCallbacks(listened, cannotListen)
            started.addCallback(self._ended).addCallbacks(ended.callback, lambda f: None)
        else:
            self.run.start().addCallback(self._ended).addCallback(ended.callback)
        if self._pendingSignal is not None and self.run is not None:
            self.run.interrupt(self._pendingSignal)
        return ended

    def interrupt(self, signum: int) -> None:
        """
        Stop early because of signal C{signum} (see L{LoadRun.interrupt}).
        """
        if self.run is not None:
            self.run.interrupt(signum)
        else:
            self._pendingSignal = signum
            if self._waiting is not None:
                self._waiting.cancel()

    def _outputFailed(self, error: OSError) -> None:
        """
        The output cannot be written: end the run at once, as a second
        signal would (from the reactor, not from inside what was printing).
        """
        if self._outputError is None:
            self._outputError = error
            self._reactor.callLater(0, self._stopNow)

    def _stopNow(self) -> None:
        for _ in range(2):
            self.interrupt(signal.SIGPIPE)

    def _ended(self, result: RunResult) -> int:
        if self._outputError is not None:
            status, line = outputFailure(self._outputError)
            if line is not None:
                self._say(line)
            return status
        reason = result.reason
        if reason is not None:
            self._say(reason)
        return result.status

    def _say(self, line: str) -> int:
        try:
            self._err.write(f"{self._command}: {line}\n")
            self._err.flush()
        except OSError:
            pass
        return EXIT_FAILURE

    def _failed(self, line: str) -> Deferred[int]:
        ended: Deferred[int] = Deferred()
        ended.callback(self._say(line))
        return ended
