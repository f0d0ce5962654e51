"""
C{twistd uppercase --workers N}: a supervisor and N worker processes, each a
full server with its own reactor, all serving every C{--listen} endpoint.

The supervisor makes every listening socket (L{uppercase.workers.sockets}: one
C{SO_REUSEPORT} socket per worker for TCP and TLS, so the kernel spreads
connections evenly; one shared socket for UNIX and systemd endpoints) and
keeps them open while it runs, so that no connection waiting in a socket's
queue is lost when a worker goes.  It then:

  - starts the workers (L{uppercase.workers.worker}) and replaces any that dies,
    at once if it had been serving, with backoff if it never started (and
    gives up, with a non-zero exit status, when none can start);
  - on SIGHUP, replaces the workers one by one: a new one serving before the
    old one retires (stops accepting, lets its connections end, stops);
  - on SIGTERM or SIGINT, stops them all gracefully, as the single process
    does, then exits; a second signal cuts that short.  Only the
    supervisor's signals count: a worker ignores SIGINT and takes any
    number of SIGTERMs for one, so that a signal to the whole process group
    (Ctrl-C, systemd's C{KillMode=control-group}) drains as a signal to the
    supervisor does (L{uppercase.cli.signals.WorkerSignalHandling});
  - relays their log lines (each says which worker wrote it) into its own
    log, and serves one C{--metrics} endpoint for the whole server: totals,
    and each worker's counts.
"""

from __future__ import annotations

import errno
import math
import os
import socket
import sys
from typing import Any, Callable, Mapping, Sequence

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IProtocolFactory
from twisted.logger import Logger, eventFromJSON
from twisted.python.failure import Failure

from uppercase.server._endpoints import PROXY_PREFIX, systemdSocketProblem, withDefaultBacklog
from uppercase.server._fdlimit import FD_HEADROOM, LimitAccess, connectionCapacity, softLimit
from uppercase.server._service import ListenError, reasonOf
from uppercase.server._udp import isUDP, parseUDP
from uppercase.workers.child import WorkerProcess, describeEnd, gatherEnds
from uppercase.workers.control import COUNTS, supervisorEndFactory
from uppercase.workers.metrics import Totals
from uppercase.workers.sockets import SocketMaker, listenThrough, planSockets
from uppercase.workers.worker import WORKER_ENV, WorkerSpec, workerLabel

__all__ = ["Slot", "Supervisor", "backoff", "planListeners", "startProblem", "workerShare"]

log = Logger()

READY_TIMEOUT = 30.0
"""Seconds a new worker has to start listening."""

MAX_START_FAILURES = 5
"""Failed starts in a row, in every slot, after which the supervisor gives up."""

START_RETRY_MAX = 5.0
"""Seconds, at most, between attempts to start a worker that the supervisor
could not start at all (out of descriptors, say): the slot is filled again
soon after the cause is gone."""

CONTROL_FD = 3
"""The worker's descriptor for its control connection; its sockets follow."""

WORKER_DESCRIPTORS = 4
"""Descriptors the supervisor holds per worker besides its listening
sockets: the control connection, and pipes for standard input, output and
error."""

WORKER_MAIN = (
    "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "from twisted.scripts.twistd import run; run()"
)
"""What a worker's Python runs: twistd, with SIGINT ignored from the start
(the supervisor decides when its workers stop; Twisted then installs no
SIGINT handler of its own)."""


def backoff(failures: int) -> float:
    """
    Seconds to wait before starting a worker again after C{failures} failed
    starts in a row: 0.25, 0.5, 1, 2 ... up to 30.
    """
    # The exponent capped: 2 ** 1024 is beyond a float.
    return min(0.25 * 2 ** (min(failures, 16) - 1), 30.0) if failures else 0.0


def startProblem(error: OSError, limits: LimitAccess | None = None) -> str:
    """
    Why the supervisor could not start a worker process, in a few words
    (C{limits}: as for L{connectionCapacity}, to name the descriptor limit).
    """
    if error.errno == errno.EMFILE:
        soft = softLimit(limits)
        return "too many open files" + (f" (limit {soft:,})" if soft is not None else "")
    if error.errno == errno.ENFILE:
        return "too many open files in the system"
    text = error.strerror or str(error)
    return text[:1].lower() + text[1:]


class Slot:
    """
    A place for one worker: the one serving in it, failed starts in a row,
    a pending restart, and why the last attempt to start a worker failed
    (L{None} once one started).
    """

    def __init__(self, number: int) -> None:
        self.number = number
        self.worker: WorkerProcess | None = None
        self.failures = 0
        self.restart: IDelayedCall | None = None
        self.started = 0
        self.unstartable: str | None = None


Spawn = Callable[..., Any]
"""C{reactor.spawnProcess}: C{(protocol, executable, args, env=..., childFDs=...)}."""


class Supervisor(MultiService):
    """
    Run C{count} workers serving C{descriptions} (see the module docstring).

    @param workerArgs: the command-line arguments of each worker's
        C{uppercase} (its share of the limits included).
    @param twistdArgs: C{twistd}'s own arguments for each worker (its log
        observer, its reactor).
    @param spawn: C{reactor.spawnProcess} (tests pass their own).
    @param adopt: C{reactor.adoptStreamConnection}.
    @param plan: makes the listening sockets (tests pass their own).
    @param onGiveUp: called when no worker can start.
    @param fdLimits: C{(getrlimit, setrlimit, RLIM_INFINITY)} for the
        descriptor limit; the process's own by default.
    @param relayEvents: L{None} when this process logs through uppercase's
        own observers (the workers' lines are written as they are);
        C{"json"} or C{"text"} (the kind of observer) when it does not, and
        the workers log JSON lines, relayed as events (see L{relay}).
    """

    def __init__(
        self,
        descriptions: Sequence[str],
        count: int,
        reactor: Any,
        workerArgs: Sequence[str],
        twistdArgs: Sequence[str] = (),
        *,
        shutdownTimeout: float,
        spawn: Spawn | None = None,
        adopt: Callable[[int, IProtocolFactory], object] | None = None,
        plan: Callable[[Sequence[str], int], SocketMaker] | None = None,
        environ: Mapping[str, str] = os.environ,
        onGiveUp: Callable[[str], None] | None = None,
        fdLimits: LimitAccess | None = None,
        relayEvents: str | None = None,
    ) -> None:
        super().__init__()
        self._fdLimits = fdLimits
        self._relayEvents = relayEvents
        self.descriptions = list(descriptions)
        self.slots = [Slot(number) for number in range(1, count + 1)]
        self.totals = Totals(self)
        self._reactor = reactor
        self._workerArgs = list(workerArgs)
        self._twistdArgs = list(twistdArgs)
        self._shutdownTimeout = shutdownTimeout
        self._spawn: Spawn = spawn or reactor.spawnProcess
        self._adopt = adopt or (lambda fd, f: reactor.adoptStreamConnection(fd, socket.AF_UNIX, f))
        self._plan = plan or planListeners
        self._environ = environ
        self._onGiveUp = onGiveUp
        self._sockets: SocketMaker | None = None
        self._retiring: list[WorkerProcess] = []
        self._stopping = False
        self._reloading = False
        self._faults: list[str] | None = None

    def workers(self) -> list[WorkerProcess]:
        """
        Every worker process running: serving, starting, or retiring.
        """
        serving = [slot.worker for slot in self.slots if slot.worker is not None]
        return serving + [w for w in self._retiring if w not in serving]

    def privilegedStartService(self) -> None:
        """
        Make the listening sockets.

        @raise ListenError: if the descriptor limit is too low for this many
            workers (after raising the soft limit as far as the hard one
            allows).
        @raise Exception: as binding them would (a port in use...).
        """
        if self._sockets is None:
            self._checkDescriptors()
            self._sockets = self._plan(self.descriptions, len(self.slots))
        super().privilegedStartService()

    def _checkDescriptors(self) -> None:
        count = len(self.slots)
        need = count * (WORKER_DESCRIPTORS + len(self.descriptions))
        capacity, soft = connectionCapacity(need, self._fdLimits)
        if soft is not None and capacity < need:
            raise ListenError(
                ", ".join(self.descriptions),
                f"{count} workers need about {need + FD_HEADROOM} file descriptors in the "
                f"supervisor, and its limit is {soft}: run fewer workers, or raise the limit",
            )

    def closeSockets(self) -> None:
        """
        Close the listening sockets (removing the UNIX sockets' files): the
        server could not start, or is stopping.
        """
        if self._sockets is not None:
            self._sockets.close()

    def startService(self) -> None:
        self.privilegedStartService()
        super().startService()
        log.info(
            "Starting {count} workers serving {endpoints}",
            count=len(self.slots),
            endpoints=", ".join(self.descriptions),
        )
        for slot in self.slots:
            self._fill(slot)

    def _fill(self, slot: Slot) -> None:
        """
        Start a worker in C{slot}; if it cannot even be started (no
        descriptor left...), say so once and try again later, as long as it
        takes.
        """
        try:
            slot.worker = self._start(slot)
        except OSError as e:
            problem = startProblem(e, self._fdLimits)
            slot.failures += 1
            if self._noneCanStart():
                self._giveUp(f"no worker could start: {problem}")
                return
            delay = min(backoff(slot.failures), START_RETRY_MAX)
            if problem != slot.unstartable:
                log.error(
                    "Could not start worker {worker}: {problem}; trying again in {delay:g} s, "
                    "then every {most:g} s at most",
                    worker=workerLabel(slot.number, slot.started + 1),
                    problem=problem,
                    delay=delay,
                    most=START_RETRY_MAX,
                )
            slot.unstartable = problem
            slot.restart = self._reactor.callLater(delay, self._restart, slot)
            return
        if slot.unstartable is not None:
            slot.unstartable = None

    def _noneCanStart(self) -> bool:
        """
        Whether every slot failed to start a worker too often in a row, and
        none serves.
        """
        return all(s.failures >= MAX_START_FAILURES for s in self.slots) and not any(
            w.ready for w in self.workers()
        )

    def _start(self, slot: Slot) -> WorkerProcess:
        """
        Start a worker process in C{slot}.

        @raise OSError: if it cannot be started (out of descriptors...);
            nothing is left open then.
        """
        assert self._sockets is not None
        generation = slot.started + 1
        worker = WorkerProcess(self, slot.number, workerLabel(slot.number, generation))
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            ours.setblocking(False)
        except OSError:
            ours.close()
            theirs.close()
            raise

        sockets = self._sockets.socketsFor(slot.number - 1)
        childFDs: dict[int, Any] = {0: "w", 1: "r", 2: "r", CONTROL_FD: theirs.fileno()}
        for index, fd in enumerate(sockets):
            childFDs[CONTROL_FD + 1 + index] = fd
        spec = WorkerSpec(
            slot.number,
            tuple(range(CONTROL_FD + 1, CONTROL_FD + 1 + len(sockets))),
            CONTROL_FD,
            generation,
        )
        environ = {**self._environ, WORKER_ENV: spec.toEnvironment()}
        argv = [
            sys.executable,
            "-c",
            WORKER_MAIN,
            "--nodaemon",
            "--pidfile=",
            *self._twistdArgs,
            "uppercase",
            *self._workerArgs,
        ]
        try:
            self._spawn(worker, argv[0], argv, env=environ, childFDs=childFDs)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        try:
            # The reactor adopts a duplicate of the descriptor; ours closes.
            self._adopt(ours.fileno(), supervisorEndFactory(worker))
        except BaseException:
            # Started, but out of our reach: it stops as its control
            # connection ends (with ours, just below), or by this.
            worker.retiring = True
            self._retiring.append(worker)
            worker.signal("KILL")
            raise
        finally:
            ours.close()
        slot.started += 1
        log.info("Started worker {worker} (pid {pid})", worker=worker.label, pid=worker.pid)
        return worker

    def workerReady(self, worker: WorkerProcess) -> None:
        """
        A worker reported that it serves.
        """
        self.slots[worker.slot - 1].failures = 0
        log.info("Worker {worker} (pid {pid}) is serving", worker=worker.label, pid=worker.pid)
        if self._faults is not None and worker.control is not None:
            # Started with the command line's faults: give it today's.
            worker.control.faults(self._faults)

    def setFaults(self, specs: list[str]) -> None:
        """
        Make C{specs} every worker's faults, now and from the start of each
        worker started later (C{--control}'s changes).
        """
        self._faults = list(specs)
        for worker in self.workers():
            if worker.control is not None:
                worker.control.faults(self._faults)

    def relay(self, lines: str) -> None:
        """
        Write a worker's complete log lines into this process's log: as they
        are (they already say which worker wrote them) when this process
        logs through uppercase's own observers; otherwise (C{relayEvents}),
        each JSON line as the event it is, so that any observer writes it
        as its own (C{"text"}: with C{[worker N]} before its message, N its
        label: L{workerLabel}).
        """
        if self._relayEvents is None:
            log.info("{lines}", lines=lines.rstrip("\n"), uppercase_raw=lines)
            return
        for line in lines.splitlines():
            try:
                event = eventFromJSON(line)
                worker = str(event["worker"])
                text = str(event["log_format"])
            except (ValueError, KeyError, TypeError):
                log.info("{line}", line=line)
                continue
            if self._relayEvents == "text":
                event["log_format"] = f"[worker {worker}] {text}"
            log.observer(event)

    def relayError(self, worker: str, lines: str) -> None:
        """
        Log what worker C{worker} (its label) wrote to its standard error (not its log),
        a line an event.
        """
        for line in lines.splitlines():
            log.warn("[worker {worker}] {line}", worker=worker, line=line)

    def workerEnded(self, worker: WorkerProcess, reason: Failure) -> None:
        """
        A worker process ended: count what it did, and replace it if it was
        serving.
        """
        for name in COUNTS:
            if name != "active":
                self.totals.gone[name] += worker.counts[name]
        worker.counts = dict.fromkeys(COUNTS, 0)
        how = describeEnd(reason)
        if worker in self._retiring:
            self._retiring.remove(worker)
        slot = self.slots[worker.slot - 1]
        if worker.retiring or self._stopping:
            log.info(
                "Worker {worker} (pid {pid}) stopped: {how}",
                worker=worker.label,
                pid=worker.pid,
                how=how,
            )
            if slot.worker is worker:
                slot.worker = None
            return
        if slot.worker is not worker:
            # A replacement that never became ready, during a reload.
            log.warn(
                "New worker {worker} (pid {pid}) ended before serving: {how}",
                worker=worker.label,
                pid=worker.pid,
                how=how,
            )
            return
        slot.worker = None
        if worker.ready:
            log.warn(
                "Worker {worker} (pid {pid}) ended: {how}; replacing it",
                worker=worker.label,
                pid=worker.pid,
                how=how,
            )
            slot.failures = 0
            self._fill(slot)
            return
        slot.failures += 1
        if self._noneCanStart():
            self._giveUp(f"no worker could start: the last ended with {how}")
            return
        delay = backoff(slot.failures)
        log.warn(
            "Worker {worker} (pid {pid}) ended before serving: {how}; "
            "starting it again in {delay:g} s",
            worker=worker.label,
            pid=worker.pid,
            how=how,
            delay=delay,
        )
        slot.restart = self._reactor.callLater(delay, self._restart, slot)

    def _restart(self, slot: Slot) -> None:
        slot.restart = None
        if not self._stopping and slot.worker is None:
            self._fill(slot)

    def _giveUp(self, why: str) -> None:
        for slot in self.slots:
            if slot.restart is not None and slot.restart.active():
                slot.restart.cancel()
            slot.restart = None
        log.critical("Giving up: {why}", why=why)
        if self._onGiveUp is not None:
            self._onGiveUp(why)

    def reload(self) -> Deferred[None]:
        """
        Replace the workers one by one: each new one serves before the old
        one in its slot retires.
        """
        if self._reloading or self._stopping:
            log.info("Received SIGHUP: a reload or a stop is already under way")
            return succeed(None)
        self._reloading = True
        log.info("Reloading: replacing {count} workers one by one", count=len(self.slots))
        done: Deferred[None] = Deferred()

        def replace(index: int) -> None:
            if index == len(self.slots) or self._stopping:
                self._reloading = False
                log.info("Reload done")
                done.callback(None)
                return
            slot = self.slots[index]
            old = slot.worker
            try:
                new = self._start(slot)
            except OSError as e:
                self._reloading = False
                left = len(self.slots) - index
                log.error(
                    "Reload failed: {problem}; {rest}",
                    problem=startProblem(e, self._fdLimits),
                    rest="the old workers go on serving"
                    if index == 0
                    else f"{left} old {_workers(left)} {'goes' if left == 1 else 'go'} on serving",
                )
                done.callback(None)
                return
            if slot.restart is not None and slot.restart.active():
                # An empty slot's restart: this reload starts its worker.
                slot.restart.cancel()
                slot.restart = None
            deadline = self._reactor.callLater(READY_TIMEOUT, new.signal, "KILL")

            def serving(_: object) -> None:
                if deadline.active():
                    deadline.cancel()
                slot.worker = new
                if old is not None:
                    self._retiring.append(old)
                    old.retire()
                replace(index + 1)

            def failed(failure: Failure) -> None:
                if deadline.active():
                    deadline.cancel()
                self._reloading = False
                log.error(
                    "Reload stopped: the new worker {worker} did not start ({how})",
                    worker=new.label,
                    how=describeEnd(failure),
                )
                if slot.worker is None and slot.restart is None and not self._stopping:
                    # The slot was empty (its restart cancelled above).
                    delay = min(backoff(slot.failures + 1), START_RETRY_MAX)
                    slot.restart = self._reactor.callLater(delay, self._restart, slot)
                done.callback(None)

            new.waitReady().addCallbacks(serving, failed)

        replace(0)
        return done

    def stopService(self) -> Deferred[Any]:
        """
        Stop every worker gracefully; close the listening sockets.

        @return: a L{Deferred} that fires once every worker has ended.
        """
        self._stopping = True
        for slot in self.slots:
            if slot.restart is not None and slot.restart.active():
                slot.restart.cancel()
            slot.restart = None
        running = self.workers()
        log.info("Stopping {count} {workers}", count=len(running), workers=_workers(len(running)))
        for worker in running:
            worker.signal("TERM")
        self.closeSockets()
        ended: Deferred[Any] = gatherEnds(running)
        deadline = self._reactor.callLater(
            2 * self._shutdownTimeout + 5, self._killAll, "did not stop in time"
        )

        def stopped(result: object) -> object:
            if deadline.active():
                deadline.cancel()
            return result

        ended.addBoth(stopped)
        ended.addBoth(lambda r: MultiService.stopService(self))
        return ended

    def cutShort(self, why: str) -> None:
        """
        A second stopping signal: tell every worker to cut its drain short.
        """
        running = self.workers()
        log.warn(
            "Cutting the stop short {why}: {count} {workers}",
            why=why,
            count=len(running),
            workers=_workers(len(running)),
        )
        for worker in running:
            worker.abort(f"{why} to the supervisor")

    def _killAll(self, why: str) -> None:
        for worker in self.workers():
            log.warn(
                "Killing worker {worker} (pid {pid}): {why}",
                worker=worker.label,
                pid=worker.pid,
                why=why,
            )
            worker.signal("KILL")


def planListeners(descriptions: Sequence[str], count: int) -> SocketMaker:
    """
    Make the listening sockets for C{count} workers serving C{descriptions}
    (C{haproxy:} stripped, the default backlog added, as the single process
    listens).

    @raise ListenError: naming the endpoint that failed, and why.
    """

    def listen(maker: Any, description: str) -> object:
        endpoint = withDefaultBacklog(description)
        if endpoint.startswith(PROXY_PREFIX):
            endpoint = endpoint[len(PROXY_PREFIX) :]
        problem = systemdSocketProblem(description)
        if problem is not None:
            raise ListenError(description, problem)
        try:
            if isUDP(description):
                address = parseUDP(description)
                return maker.listenUDP(address.port, address.interface)
            return listenThrough(maker, endpoint)
        except Exception as e:
            raise ListenError(description, reasonOf(e)) from None

    return planSockets(list(descriptions), count, listen)


def workerShare(limit: int, workers: int) -> int:
    """
    Each worker's share of a whole-server limit (0 stays unlimited).
    """
    return math.ceil(limit / workers) if limit else 0


def _workers(count: int) -> str:
    """The word for C{count} workers in a log line."""
    return "worker" if count == 1 else "workers"
