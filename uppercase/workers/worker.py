"""
A worker of C{twistd uppercase --workers N}: a full server, with its own
reactor, started by the supervisor (L{uppercase.workers.supervisor}) with the
listening sockets it adopts and a control connection.

The supervisor describes the worker in the C{UPPERCASE_WORKER} environment
variable (L{WorkerSpec}: its number, the descriptors of its sockets, one per
C{--listen}, and of its control connection).  Over the control connection
(L{uppercase.workers.control}), the worker says when it is ready (listening)
and reports its counts every second and when it stops; the supervisor may
tell it to retire (stop accepting, let its connections end, then stop), or
to abort the connections its stop is still waiting for (the supervisor got a
second stop signal: see L{uppercase.cli.signals.WorkerSignalHandling} for why
a worker's own signals never do that).  The worker stops when the
connection ends: a worker never outlives its supervisor.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from twisted.application.service import Service
from twisted.internet.interfaces import IDelayedCall, IProtocolFactory, IReactorTime
from twisted.logger import Logger

from uppercase.echo._datagram import DatagramCounts
from uppercase.server._faults import FaultSet
from uppercase.server._faultspec import KINDS, FaultError, parseFault
from uppercase.server._logbudget import ChangeLog
from uppercase.server._state import ServerState
from uppercase.workers.control import DATAGRAM_PREFIX, FAULT_PREFIX, WorkerEnd, workerEndFactory

__all__ = [
    "REPORT_INTERVAL",
    "WORKER_ENV",
    "WorkerControl",
    "WorkerSpec",
    "FAULTS_LINE",
    "counts",
    "describeFaults",
    "replaceFaults",
    "workerLabel",
]

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


def counts(factory: ServerState, datagrams: DatagramCounts | None = None) -> dict[str, int]:
    """
    A factory's counts and its datagram echo's, as a worker reports them:
    one for each of L{uppercase.workers.control.COUNTS}.
    """
    received, sent = factory.byteCounts()
    faults: dict[str, int] = getattr(factory, "faultCounts", dict)()
    udp = (datagrams or DatagramCounts()).asDict()
    return {
        "accepted": factory.accepted,
        "active": len(factory.connections),
        "rejected": factory.rejected,
        "idleClosed": factory.idleClosed,
        "received": received,
        "sent": sent,
        **{DATAGRAM_PREFIX + name: count for name, count in udp.items()},
        **{FAULT_PREFIX + kind: faults.get(kind, 0) for kind in KINDS},
    }


class WorkerControl(Service):
    """
    Report to the supervisor and obey it: C{ready} once the server listens,
    C{counts} every L{REPORT_INTERVAL} seconds and when stopping; on
    C{retire}, call C{retire}; on C{abort}, call C{abort} with why (and
    C{stop}, if the worker is not stopping yet); when the control connection
    ends (the supervisor is gone), call C{stop}; on C{faults}, call
    C{replaceFaults} with the specs.

    @param adopt: adopts the control connection's descriptor with a factory
        (C{reactor.adoptStreamConnection} for a UNIX socket).
    """

    def __init__(
        self,
        spec: WorkerSpec,
        factory: ServerState,
        clock: IReactorTime,
        adopt: Callable[[int, IProtocolFactory], object],
        retire: Callable[[], None],
        stop: Callable[[], None],
        abort: Callable[[str], None] = lambda why: None,
        datagrams: DatagramCounts | None = None,
        replaceFaults: Callable[[Sequence[str]], None] = lambda specs: None,
    ) -> None:
        self.spec = spec
        self._replaceFaults = replaceFaults
        self._factory = factory
        self._clock = clock
        self._adopt = adopt
        self._retire = retire
        self._stop = stop
        self._abort = abort
        self._datagrams = datagrams
        self._faultsLog = ChangeLog(clock, log)
        self._line: WorkerEnd | None = None
        self._report: IDelayedCall | None = None
        self._stopping = False

    def startService(self) -> None:
        super().startService()
        os.set_blocking(self.spec.control, False)  # as adoptStreamConnection requires
        self._adopt(self.spec.control, workerEndFactory(self))
        os.close(self.spec.control)

    def connected(self, line: WorkerEnd) -> None:
        self._line = line
        line.ready(os.getpid())
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
            self._line.counts(counts(self._factory, self._datagrams))

    def finalReport(self) -> None:
        """
        Send the counts as the worker stops, straight to the socket: the
        reactor, about to stop, would drop what its buffer still holds.
        """
        if self._line is not None:
            self._line.countsNow(counts(self._factory, self._datagrams))

    def retire(self) -> None:
        """
        The supervisor's C{retire} command: call C{retire}.
        """
        self._retire()

    def abort(self, why: str) -> None:
        """
        The supervisor's C{abort} command: call C{abort} with C{why}, and
        C{stop} first if the worker is not stopping yet.
        """
        if not self._stopping:
            self._stop()
        self._abort(why)

    def setFaults(self, specs: list[str]) -> None:
        """
        The supervisor's C{faults} command: call C{replaceFaults}, and say
        what the faults are now.
        """
        self._replaceFaults(specs)
        self._faultsLog.say("Faults now: {faults}", faults=describeFaults(specs))

    def supervisorGone(self) -> None:
        """
        The control connection ended: stop, unless stopping already.
        """
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


def replaceFaults(faults: FaultSet, specs: Sequence[str]) -> None:
    """
    Make C{specs} the faults of C{faults}, in place of the ones before (the
    supervisor's C{faults} command).  A spec that does not parse (the
    supervisor checked each) is left out, and said.
    """
    faults.clear()
    for text in specs:
        try:
            faults.add(parseFault(text))
        except FaultError as e:
            log.warn(
                "Fault {spec!r} from the supervisor left out: {error}", spec=text, error=str(e)
            )


FAULTS_LINE = 240
"""The most characters of fault specs a worker's C{Faults now:} line shows,
before it counts the rest (64 faults of 512 characters would be 32 KB a
line, in every worker)."""


def describeFaults(specs: list[str], limit: int = FAULTS_LINE) -> str:
    """
    C{specs} as a log line shows them: joined by C{; }, as many whole ones
    as fit in C{limit} characters (the first cut to C{limit} and marked
    with an ellipsis if it alone is longer), then how many more; C{none}
    for none.
    """
    if not specs:
        return "none"
    first = (
        specs[0] if len(specs[0]) <= limit else specs[0][: limit - 1] + "\N{HORIZONTAL ELLIPSIS}"
    )
    shown = [first]
    length = len(first)
    for spec in specs[1:]:
        length += 2 + len(spec)
        if length > limit:
            break
        shown.append(spec)
    text = "; ".join(shown)
    rest = len(specs) - len(shown)
    if rest:
        text += f"; and {rest:,} more ({len(specs):,} in all)"
    return text
