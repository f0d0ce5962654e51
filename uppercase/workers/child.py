"""
A worker process as its supervisor (L{uppercase.workers.supervisor}) sees it: its
log lines, relayed whole; its control connection (readiness, counts, the
commands to retire and to abort: L{uppercase.workers.control}); how it ended.
It tells the supervisor through L{Parent}, a narrow interface declared here.
"""

from __future__ import annotations

import signal
from typing import Any, Protocol, Sequence

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.interfaces import IProcessTransport
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from uppercase.workers.control import COUNTS, SupervisorEnd

__all__ = ["Parent", "WorkerProcess", "describeEnd", "gatherEnds"]


def describeEnd(reason: Failure) -> str:
    """
    How a worker process ended, in a few words.
    """
    value = reason.value
    if isinstance(value, ProcessDone):
        return "exit status 0"
    if isinstance(value, ProcessTerminated):
        if value.signal is not None:
            try:
                return f"killed by {signal.Signals(value.signal).name}"
            except ValueError:
                return f"killed by signal {value.signal}"
        return f"exit status {value.exitCode}"
    return str(value)


class Parent(Protocol):
    """
    What a L{WorkerProcess} tells its supervisor.
    """

    def relay(self, lines: str) -> None:
        """
        Log the worker's complete log lines.
        """

    def relayError(self, worker: str, lines: str) -> None:
        """
        Log the complete lines worker C{worker} (its label) wrote to its
        standard error.
        """

    def workerReady(self, worker: WorkerProcess) -> None:
        """
        C{worker} reported, for the first time, that it serves.
        """

    def workerEnded(self, worker: WorkerProcess, reason: Failure) -> None:
        """
        C{worker}'s process ended, as C{reason} says.
        """


class WorkerProcess(ProcessProtocol):
    """
    One worker process, as the supervisor sees it.

    @ivar slot: its number, from 1.
    @ivar label: what the log calls it (L{uppercase.workers.worker.workerLabel}).
    @ivar ready: it reported that it listens.
    @ivar retiring: it was told to retire.
    @ivar counts: its latest counts.
    """

    transport: IProcessTransport | None

    def __init__(self, supervisor: Parent, slot: int, label: str | None = None) -> None:
        self.supervisor = supervisor
        self.slot = slot
        self.label = str(slot) if label is None else label
        self.ready = False
        self.retiring = False
        self.counts: dict[str, int] = dict.fromkeys(COUNTS, 0)
        self.control: SupervisorEnd | None = None
        self.whenEnded: Deferred[None] = Deferred()
        self._readyWaiters: list[Deferred[WorkerProcess]] = []
        self._partial = {1: b"", 2: b""}

    pid: int | None = None

    def makeConnection(self, transport: Any) -> None:
        self.pid = transport.pid
        super().makeConnection(transport)

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        # Complete lines only, so that lines of different workers never mix.
        text = self._partial.get(childFD, b"") + data
        end = text.rfind(b"\n") + 1
        self._partial[childFD] = text[end:]
        if end:
            self._relay(childFD, text[:end].decode("utf-8", "replace"))

    def _relay(self, childFD: int, lines: str) -> None:
        if childFD == 2:
            # Not its log: what Python or twistd wrote before (or besides)
            # logging, as bare lines.
            self.supervisor.relayError(self.label, lines)
        else:
            self.supervisor.relay(lines)

    def controlConnected(self, line: SupervisorEnd) -> None:
        self.control = line

    def controlLost(self, line: SupervisorEnd) -> None:
        if self.control is line:
            self.control = None

    def readyReported(self) -> None:
        if self.ready:
            return
        self.ready = True
        self.supervisor.workerReady(self)
        waiters, self._readyWaiters = self._readyWaiters, []
        for waiter in waiters:
            waiter.callback(self)

    def countsReported(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def waitReady(self) -> Deferred[WorkerProcess]:
        """
        A L{Deferred} that fires once the worker serves, or fails with how it
        ended if it ends first.
        """
        waiter: Deferred[WorkerProcess] = Deferred()
        if self.ready:
            waiter.callback(self)
        else:
            self._readyWaiters.append(waiter)
        return waiter

    def retire(self) -> None:
        """
        Tell the worker to stop accepting, let its connections end, and stop.
        """
        self.retiring = True
        if self.control is not None:
            self.control.retire()

    def abort(self, why: str) -> None:
        """
        Tell the worker to abort the connections its stop is still waiting
        for (C{why} goes into its log line); kill it if its control
        connection is gone.
        """
        if self.control is not None:
            self.control.abort(why)
        else:
            self.signal("KILL")

    def signal(self, name: str) -> None:
        if self.transport is not None and self.transport.pid is not None:
            try:
                self.transport.signalProcess(name)
            except Exception:
                pass

    def processEnded(self, reason: Failure) -> None:
        for childFD, rest in self._partial.items():
            if rest:
                self._relay(childFD, rest.decode("utf-8", "replace") + "\n")
        self.supervisor.workerEnded(self, reason)
        waiters, self._readyWaiters = self._readyWaiters, []
        for waiter in waiters:
            waiter.errback(reason)
        self.whenEnded.callback(None)


def gatherEnds(workers: Sequence[WorkerProcess]) -> Deferred[Any]:
    """
    A L{Deferred} that fires once every one of C{workers} has ended.
    """
    return gatherResults([w.whenEnded for w in workers])
