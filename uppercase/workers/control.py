"""
The control line between the supervisor and each of its workers: both ends
of one wire protocol, over the UNIX socket pair the supervisor makes for the
worker (L{uppercase.workers.worker.WorkerSpec.control}).

One JSON object a line, both ways:

  - worker to supervisor: C{{"type": "ready", "pid": PID}} once it listens;
    C{{"type": "counts", ...}} with each of L{COUNTS} every second and as it
    stops;
  - supervisor to worker: C{{"command": "retire"}} (stop accepting, let the
    connections end, stop); C{{"command": "abort", "why": WHY}} (abort the
    connections the stop still waits for, C{WHY} going into the worker's
    log line); C{{"command": "faults", "specs": [SPEC, ...]}} (serve these
    faults from now on, in place of the ones before: C{--control}'s changes).

Each end reports what it reads to its owner through a narrow interface
declared here (L{SupervisorSide}, L{WorkerSide}), so neither imports the code
that owns it.
"""

from __future__ import annotations

import json
import socket
from typing import Any, Mapping, Protocol

from twisted.internet.interfaces import ISystemHandle
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure

from uppercase.echo._datagram import COUNT_NAMES
from uppercase.server._faults import MAX_FAULTS, MAX_SPEC_LENGTH
from uppercase.server._faultspec import KINDS

__all__ = [
    "ABORT",
    "COUNTS",
    "COUNTS_REPORT",
    "DATAGRAM_PREFIX",
    "DEFAULT_WHY",
    "DELIMITER",
    "FAULT_PREFIX",
    "FAULTS",
    "FAULTS_LINE_MAX",
    "READY",
    "RETIRE",
    "SupervisorEnd",
    "SupervisorSide",
    "WorkerEnd",
    "WorkerSide",
    "encode",
    "supervisorEndFactory",
    "workerEndFactory",
]

log = Logger()

DATAGRAM_PREFIX = "udp:"
"""What starts the names of the datagram echo's counts in a report."""

FAULT_PREFIX = "fault:"
"""What starts the names of the fault counts (connections that got each
fault, L{uppercase.server._faults.FaultSet.applied}) in a report."""

COUNTS = (
    ("accepted", "active", "rejected", "idleClosed", "received", "sent")
    + tuple(DATAGRAM_PREFIX + name for name in COUNT_NAMES)
    + tuple(FAULT_PREFIX + kind for kind in KINDS)
)
"""What a worker counts and reports (see L{uppercase.workers.worker.counts}):
its connections' counts, then its datagram echo's
(L{uppercase.echo.DatagramCounts}), then its faults'."""

READY = "ready"
"""The C{type} of the worker's message saying it listens."""

COUNTS_REPORT = "counts"
"""The C{type} of the worker's message carrying its counts."""

RETIRE = "retire"
"""The command to stop accepting, let the connections end, and stop."""

ABORT = "abort"
"""The command to abort the connections the worker's stop still waits for."""

FAULTS = "faults"
"""The command to replace the worker's faults with the ones it lists."""

DEFAULT_WHY = "on the supervisor's request"
"""Why an C{abort} aborts, when the command does not say."""

DELIMITER = b"\n"
"""What ends each line."""


def encode(message: Mapping[str, Any]) -> bytes:
    """
    One message as a line of the control connection, delimiter included.
    """
    return json.dumps(message).encode() + DELIMITER


class SupervisorSide(Protocol):
    """
    What the supervisor's end of a worker's line reports to: the supervisor's
    view of that worker (L{uppercase.workers.child.WorkerProcess}).
    """

    def controlConnected(self, line: SupervisorEnd) -> None:
        """
        The control connection is up: C{line} sends the commands.
        """

    def controlLost(self, line: SupervisorEnd) -> None:
        """
        The control connection C{line} ended.
        """

    def readyReported(self) -> None:
        """
        The worker said it listens (it may say so more than once).
        """

    def countsReported(self, counts: dict[str, int]) -> None:
        """
        The worker reported its counts: one integer for each of L{COUNTS}.
        """


class SupervisorEnd(LineOnlyReceiver):
    """
    The supervisor's end of a worker's control connection: reads the
    worker's reports, sends it commands.
    """

    delimiter = DELIMITER

    def __init__(self, worker: SupervisorSide) -> None:
        self.worker = worker

    def connectionMade(self) -> None:
        self.worker.controlConnected(self)

    def lineReceived(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        kind = message.get("type")
        if kind == READY:
            self.worker.readyReported()
        elif kind == COUNTS_REPORT:
            self.worker.countsReported({name: int(message.get(name, 0)) for name in COUNTS})

    def retire(self) -> None:
        """
        Tell the worker to retire.
        """
        self._send({"command": RETIRE})

    def abort(self, why: str) -> None:
        """
        Tell the worker to abort the connections its stop waits for, because
        of C{why}.
        """
        self._send({"command": ABORT, "why": why})

    def faults(self, specs: list[str]) -> None:
        """
        Tell the worker to serve the faults C{specs} from now on.
        """
        self._send({"command": FAULTS, "specs": specs})

    def _send(self, message: Mapping[str, Any]) -> None:
        assert self.transport is not None
        self.transport.write(encode(message))

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:
        self.worker.controlLost(self)


def supervisorEndFactory(worker: SupervisorSide) -> Factory[SupervisorEnd]:
    """
    A factory of the supervisor's end of C{worker}'s control connection.
    """
    return Factory.forProtocol(lambda: SupervisorEnd(worker))


class WorkerSide(Protocol):
    """
    What the worker's end of the line reports to: the worker's control
    service (L{uppercase.workers.worker.WorkerControl}).
    """

    def connected(self, line: WorkerEnd) -> None:
        """
        The control connection is up: C{line} sends the reports.
        """

    def retire(self) -> None:
        """
        The supervisor said: retire.
        """

    def abort(self, why: str) -> None:
        """
        The supervisor said: abort the connections the stop waits for.
        """

    def supervisorGone(self) -> None:
        """
        The control connection ended: the supervisor is gone.
        """

    def setFaults(self, specs: list[str]) -> None:
        """
        The supervisor said: serve these faults from now on.
        """


FAULTS_LINE_MAX = len(encode({"command": FAULTS, "specs": []})) + MAX_FAULTS * (
    # json.dumps writes a character as at most 12 bytes (an astral one as
    # two \\uXXXX escapes), and a spec takes two quotes and ", " more.
    12 * MAX_SPEC_LENGTH + 4
)
"""The longest line the supervisor sends: the C{faults} command with
L{MAX_FAULTS} specs of L{MAX_SPEC_LENGTH} characters, each written in full
as JSON escapes (about 385 KiB)."""


class WorkerEnd(LineOnlyReceiver):
    """
    The worker's end of the control connection: obeys the supervisor's
    commands, sends the worker's reports.
    """

    delimiter = DELIMITER
    # Over LineOnlyReceiver's 16 KiB default: a longer line would drop the
    # connection, and the worker with it, for every worker started after.
    MAX_LENGTH = FAULTS_LINE_MAX

    def __init__(self, service: WorkerSide) -> None:
        self.service = service

    def connectionMade(self) -> None:
        self.service.connected(self)

    def lineReceived(self, line: bytes) -> None:
        try:
            message = json.loads(line)
            command = message["command"]
        except (ValueError, KeyError, TypeError):
            log.warn("Unreadable line from the supervisor: {line!r}", line=line[:100])
            return
        if command == RETIRE:
            self.service.retire()
        elif command == ABORT:
            self.service.abort(str(message.get("why", DEFAULT_WHY)))
        elif command == FAULTS and isinstance(message.get("specs"), list):
            self.service.setFaults([str(spec) for spec in message["specs"]])
        else:
            log.warn("Unknown command from the supervisor: {command!r}", command=command)

    def ready(self, pid: int) -> None:
        """
        Say that the worker listens.
        """
        self._send({"type": READY, "pid": pid})

    def counts(self, counts: Mapping[str, int]) -> None:
        """
        Report the worker's counts.
        """
        self._send({"type": COUNTS_REPORT, **counts})

    def countsNow(self, counts: Mapping[str, int]) -> None:
        """
        Report the worker's counts as it stops, straight to the socket when
        the transport has one: the reactor, about to stop, would drop what
        its buffer still holds.
        """
        if self.transport is None:
            return
        line = encode({"type": COUNTS_REPORT, **counts})
        handle = ISystemHandle(self.transport, None)
        sock = handle.getHandle() if handle is not None else None
        if not isinstance(sock, socket.socket):
            self.transport.write(line)
            return
        try:
            sock.send(line)
        except OSError:
            pass

    def _send(self, message: Mapping[str, Any]) -> None:
        assert self.transport is not None
        self.transport.write(encode(message))

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:
        self.service.supervisorGone()


def workerEndFactory(service: WorkerSide) -> Factory[WorkerEnd]:
    """
    A factory of the worker's end of its control connection, reporting to
    C{service}.
    """
    return Factory.forProtocol(lambda: WorkerEnd(service))
