"""
A worker of C{twistd uppercase --workers N}: a full server, with its own
reactor, started by the supervisor (L{uppercase.workers.supervisor}) with the
listening sockets it adopts and a control connection.

The supervisor describes the worker in the C{UPPERCASE_WORKER} environment
variable (L{WorkerSpec}: its number, the descriptors of its sockets, one per
C{--listen}, and of its control connection).  Over the control connection,
one JSON object a line, the worker says when it is ready (listening) and
reports its counts every second and when it stops; the supervisor may tell
it to retire (stop accepting, let its connections end, then stop), or to
abort the connections its stop is still waiting for (the supervisor got a
second stop signal: see L{uppercase.cli.signals.WorkerSignalHandling} for why
a worker's own signals never do that).  The worker stops when the
connection ends: a worker never outlives its supervisor.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from twisted.application.service import Service
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure

from uppercase.server._factory import UppercaseFactory

log = Logger()

WORKER_ENV = "UPPERCASE_WORKER"
"""The environment variable that makes C{twistd uppercase} a worker."""

REPORT_INTERVAL = 1.0
"""Seconds between a worker's reports of its counts."""


@dataclass(frozen=True)
class WorkerSpec:
    """
    What the supervisor tells a worker about itself.

    @ivar worker: its number (its slot, from 1).
    @ivar sockets: one listening socket per C{--listen}, in order.
    @ivar control: its end of the control connection.
    @ivar generation: which of the processes started in its slot it is,
        from 1 (see L{workerLabel}).
    """

    worker: int
    sockets: tuple[int, ...]
    control: int
    generation: int = 1

    @property
    def label(self) -> str:
        """
        What its log lines call it (L{workerLabel}).
        """
        return workerLabel(self.worker, self.generation)

    def toEnvironment(self) -> str:
        return json.dumps(
            {
                "worker": self.worker,
                "sockets": list(self.sockets),
                "control": self.control,
                "generation": self.generation,
            }
        )

    @classmethod
    def fromEnvironment(cls, environ: Mapping[str, str] = os.environ) -> WorkerSpec | None:
        """
        The spec in C{environ}, or L{None} outside a worker.
        """
        text = environ.get(WORKER_ENV)
        if text is None:
            return None
        data = json.loads(text)
        return cls(
            int(data["worker"]),
            tuple(data["sockets"]),
            int(data["control"]),
            int(data.get("generation", 1)),
        )


def workerLabel(slot: int, generation: int) -> str:
    """
    What the log calls the C{generation}th worker process started in slot
    C{slot}: C{"2"} for the first, then C{"2.2"}, C{"2.3"} ... for those
    that replace it (after a reload, or a crash), so that an old worker
    still draining and its replacement are told apart.
    """
    return str(slot) if generation == 1 else f"{slot}.{generation}"


def counts(factory: UppercaseFactory) -> dict[str, int]:
    """
    A factory's counts, as a worker reports them.
    """
    received, sent = factory.byteCounts()
    return {
        "accepted": factory.accepted,
        "active": len(factory.connections),
        "rejected": factory.rejected,
        "idleClosed": factory.idleClosed,
        "received": received,
        "sent": sent,
    }


class ControlLine(LineOnlyReceiver):
    """
    The worker's end of the control connection: JSON lines both ways.
    """

    delimiter = b"\n"
    service: WorkerControl

    def connectionMade(self) -> None:
        self.service.connected(self)

    def lineReceived(self, line: bytes) -> None:
        try:
            message = json.loads(line)
            command = message["command"]
        except (ValueError, KeyError, TypeError):
            log.warn("Unreadable line from the supervisor: {line!r}", line=line[:100])
            return
        self.service.command(command, str(message.get("why", "on the supervisor's request")))

    def send(self, message: dict[str, Any]) -> None:
        self.sendLine(json.dumps(message).encode())

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:
        self.service.supervisorGone()


class WorkerControl(Service):
    """
    Report to the supervisor and obey it: C{ready} once the server listens,
    C{counts} every L{REPORT_INTERVAL} seconds and when stopping; on
    C{retire}, call C{retire}; on C{abort}, call C{abort} with why (and
    C{stop}, if the worker is not stopping yet); when the control connection
    ends (the supervisor is gone), call C{stop}.

    @param adopt: adopts the control connection's descriptor with a factory
        (C{reactor.adoptStreamConnection} for a UNIX socket).
    """

    def __init__(
        self,
        spec: WorkerSpec,
        factory: UppercaseFactory,
        clock: IReactorTime,
        adopt: Callable[[int, Factory], object],
        retire: Callable[[], None],
        stop: Callable[[], None],
        abort: Callable[[str], None] = lambda why: None,
    ) -> None:
        self.spec = spec
        self._factory = factory
        self._clock = clock
        self._adopt = adopt
        self._retire = retire
        self._stop = stop
        self._abort = abort
        self._line: ControlLine | None = None
        self._report: IDelayedCall | None = None
        self._stopping = False

    def startService(self) -> None:
        super().startService()

        def build() -> ControlLine:
            line = ControlLine()
            line.service = self
            return line

        os.set_blocking(self.spec.control, False)  # as adoptStreamConnection requires
        self._adopt(self.spec.control, Factory.forProtocol(build))
        os.close(self.spec.control)

    def connected(self, line: ControlLine) -> None:
        self._line = line
        line.send({"type": "ready", "pid": os.getpid()})
        self._scheduleReport()

    def _scheduleReport(self) -> None:
        self._report = self._clock.callLater(REPORT_INTERVAL, self._reportNow)

    def _reportNow(self) -> None:
        self._report = None
        self.report()
        if not self._stopping:
            self._scheduleReport()

    def report(self) -> None:
        """
        Send the counts now.
        """
        if self._line is not None:
            self._line.send({"type": "counts", **counts(self._factory)})

    def finalReport(self) -> None:
        """
        Send the counts as the worker stops, straight to the socket: the
        reactor, about to stop, would drop what its buffer still holds.
        """
        if self._line is None or self._line.transport is None:
            return
        line = json.dumps({"type": "counts", **counts(self._factory)}).encode() + b"\n"
        try:
            self._line.transport.getHandle().send(line)  # type: ignore[attr-defined]
        except OSError:
            pass

    def command(self, command: str, why: str = "on the supervisor's request") -> None:
        if command == "retire":
            self._retire()
        elif command == "abort":
            if not self._stopping:
                self._stop()
            self._abort(why)
        else:
            log.warn("Unknown command from the supervisor: {command!r}", command=command)

    def supervisorGone(self) -> None:
        self._line = None
        if not self._stopping:
            log.warn("The supervisor is gone: stopping")
            self._stop()

    def stopService(self) -> Any:
        self._stopping = True
        if self._report is not None and self._report.active():
            self._report.cancel()
        self._report = None
        return super().stopService()
