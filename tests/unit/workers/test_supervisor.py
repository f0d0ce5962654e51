"""
The supervisor's logic on fakes: starting, replacing, backing off, reloading
and stopping workers, relaying their logs and adding up their counts; no
real process is started.
"""

from __future__ import annotations

import errno
import json
import os
import socket
from typing import Any

from twisted.internet.address import UNIXAddress
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from uppercase.server._settings import MAX_WORKERS, workerCount
from uppercase.testing import StreamTransport
from uppercase.workers.child import WorkerProcess
from uppercase.workers.metrics import WorkerCollector
from uppercase.workers.supervisor import (
    CONTROL_FD,
    MAX_START_FAILURES,
    START_RETRY_MAX,
    WORKER_MAIN,
    Supervisor,
    backoff,
    workerShare,
)
from uppercase.workers.worker import WORKER_ENV, WorkerSpec


class Process:
    """
    A fake process transport: its pid, and the signals it was sent.
    """

    def __init__(self, pid: int) -> None:
        self.pid: int | None = pid
        self.signals: list[str] = []

    def signalProcess(self, name: str) -> None:
        self.signals.append(name)


class Sockets:
    """
    A fake of the supervisor's listening sockets: two per endpoint (one per
    slot), and whether they were closed.
    """

    def __init__(self, descriptions: Any, count: int) -> None:
        self.count = count
        self.closed = False

    def socketsFor(self, slot: int) -> list[int]:
        return [100 + slot]

    def close(self) -> None:
        self.closed = True


class Harness:
    """
    A supervisor of two workers on a fake reactor; every spawn is recorded.
    """

    def __init__(
        self, count: int = 2, fdLimits: Any = None, relayEvents: str | None = None
    ) -> None:
        self.clock = Clock()
        self.spawned: list[tuple[WorkerProcess, Process, dict[str, str], dict[int, Any]]] = []
        self.argv: list[list[str]] = []
        self.gaveUp: list[str] = []
        self.sockets: Sockets | None = None
        self.controls: dict[WorkerProcess, StreamTransport] = {}
        self.spawnErrors: list[OSError] = []
        self.adopted: list[int] = []
        self.supervisor = Supervisor(
            ["tcp:9527"],
            count,
            self.clock,
            ["--listen", "tcp:9527"],
            shutdownTimeout=10,
            spawn=self.spawn,
            adopt=self.adopt,
            plan=self.plan,
            environ={"PATH": "/bin"},
            onGiveUp=self.gaveUp.append,
            fdLimits=fdLimits,
            relayEvents=relayEvents,
        )
        self.pids = iter(range(1000, 2000))

    def plan(self, descriptions: Any, count: int) -> Any:
        self.sockets = Sockets(descriptions, count)
        return self.sockets

    def spawn(self, protocol: WorkerProcess, executable: str, args: Any, **kw: Any) -> Process:
        if self.spawnErrors:
            raise self.spawnErrors.pop(0)
        process = Process(next(self.pids))
        protocol.makeConnection(process)
        self.spawned.append((protocol, process, kw["env"], kw["childFDs"]))
        self.argv.append(list(args))
        return process

    def adopt(self, fd: int, factory: IProtocolFactory) -> None:
        self.adopted.append(fd)
        worker = self.spawned[-1][0]
        # The reactor's adoptStreamConnection passes the (unnamed) peer.
        line = factory.buildProtocol(UNIXAddress(None))
        assert line is not None
        transport = StreamTransport()
        transport.connect(line)
        self.controls[worker] = transport

    def worker(self, index: int) -> WorkerProcess:
        return self.spawned[index][0]

    def say(self, worker: WorkerProcess, message: dict[str, Any]) -> None:
        """
        The worker sends C{message} on its control connection.
        """
        self.controls[worker].receive(json.dumps(message).encode() + b"\n")

    def ready(self, worker: WorkerProcess) -> None:
        self.say(worker, {"type": "ready", "pid": worker.pid})

    def end(self, worker: WorkerProcess, signal: int | None = None, status: int = 1) -> None:
        reason = (
            Failure(ProcessTerminated(signal=signal))
            if signal is not None
            else Failure(ProcessTerminated(exitCode=status))
        )
        worker.processEnded(reason)

    def start(self) -> list[WorkerProcess]:
        self.supervisor.startService()
        workers = [w for w, _, _, _ in self.spawned]
        for worker in workers:
            self.ready(worker)
        return workers


class StartTests(SynchronousTestCase):
    """
    Starting makes the sockets and one worker per slot.
    """

    def test_eachWorkerGetsItsSockets(self) -> None:
        """
        Each worker is spawned with its slot's sockets after the control
        connection in its descriptors, and says so in C{UPPERCASE_WORKER}.
        """
        harness = Harness()
        harness.start()
        self.assertEqual(len(harness.spawned), 2)
        for slot, (_, _, env, childFDs) in enumerate(harness.spawned):
            self.assertEqual(childFDs[CONTROL_FD + 1], 100 + slot)
            spec = WorkerSpec.fromEnvironment(env)
            self.assertEqual(spec, WorkerSpec(slot + 1, (CONTROL_FD + 1,), CONTROL_FD))
            self.assertEqual(env["PATH"], "/bin")
            self.assertIn(WORKER_ENV, env)

    def test_workersStartWithInterruptIgnored(self) -> None:
        """
        Each worker runs twistd with SIGINT ignored from the start: Ctrl-C
        reaches the whole process group, and the supervisor decides.
        """
        import signal

        from twisted.scripts import twistd

        harness = Harness(count=1)
        harness.start()
        [argv] = harness.argv
        self.assertEqual(argv[1:3], ["-c", WORKER_MAIN])
        ran: list[int] = []
        self.patch(twistd, "run", lambda: ran.append(1))
        self.addCleanup(signal.signal, signal.SIGINT, signal.getsignal(signal.SIGINT))
        exec(WORKER_MAIN, {})
        self.assertEqual(ran, [1])
        self.assertEqual(signal.getsignal(signal.SIGINT), signal.SIG_IGN)

    def test_readyLogged(self) -> None:
        """
        A worker that reports itself ready is logged as serving.
        """
        harness = Harness(count=1)
        harness.supervisor.startService()
        with capturedLogs() as events:
            harness.ready(harness.worker(0))
        self.assertEqual(
            events[0]["log_format"].format(**events[0]), "Worker 1 (pid 1000) is serving"
        )


class FaultTests(SynchronousTestCase):
    """
    C{--control}'s changes reach every worker, and workers started later.
    """

    def commands(self, harness: Harness, worker: WorkerProcess) -> list[dict[str, Any]]:
        lines = harness.controls[worker].value().splitlines()
        return [json.loads(line) for line in lines]

    def test_everyWorker(self) -> None:
        """
        Each change is sent to every worker, as the whole list.
        """
        harness = Harness()
        workers = harness.start()
        harness.supervisor.setFaults(["latency,delay=20ms"])
        for worker in workers:
            self.assertEqual(
                self.commands(harness, worker),
                [{"command": "faults", "specs": ["latency,delay=20ms"]}],
            )

    def test_laterWorker(self) -> None:
        """
        A worker started after a change (here, replacing one that died) is
        given the faults once it serves; with no change, none is sent.
        """
        harness = Harness(count=1)
        (first,) = harness.start()
        self.assertEqual(self.commands(harness, first), [])
        harness.supervisor.setFaults(["reset,after=64KB"])
        harness.end(first)
        second = harness.worker(1)
        self.assertEqual(self.commands(harness, second), [])
        harness.ready(second)
        self.assertEqual(
            self.commands(harness, second),
            [{"command": "faults", "specs": ["reset,after=64KB"]}],
        )


class ReplacementTests(SynchronousTestCase):
    """
    A worker that dies is replaced; one that never starts is retried with
    backoff; when none can start, the supervisor gives up.
    """

    def test_deadServingWorkerReplacedAtOnce(self) -> None:
        """
        A serving worker killed by SIGKILL is logged with how it ended and
        replaced at once, in the same slot.
        """
        harness = Harness()
        first, second = harness.start()
        with capturedLogs() as events:
            harness.end(first, signal=9)
        self.assertEqual(len(harness.spawned), 3)
        self.assertEqual(harness.worker(2).slot, 1)
        self.assertIn(
            "killed by SIGKILL; replacing it", events[0]["log_format"].format(**events[0])
        )
        self.assertIs(harness.supervisor.slots[0].worker, harness.worker(2))

    def test_failedStartsBackOff(self) -> None:
        """
        A worker that ends before it is ready is started again after 0.25,
        then 0.5, then 1 second.
        """
        harness = Harness(count=1)
        harness.supervisor.startService()
        for attempt, delay in enumerate([0.25, 0.5, 1.0]):
            harness.end(harness.worker(attempt))
            harness.clock.advance(delay - 0.01)
            self.assertEqual(len(harness.spawned), attempt + 1)
            harness.clock.advance(0.01)
            self.assertEqual(len(harness.spawned), attempt + 2)

    def test_readyResetsBackoff(self) -> None:
        """
        Once a worker of the slot became ready, its failures are forgotten.
        """
        harness = Harness(count=1)
        harness.supervisor.startService()
        harness.end(harness.worker(0))
        harness.clock.advance(0.25)
        harness.ready(harness.worker(1))
        self.assertEqual(harness.supervisor.slots[0].failures, 0)

    def test_givesUpWhenNoneCanStart(self) -> None:
        """
        After L{MAX_START_FAILURES} failed starts in a row in every slot,
        with none serving, the supervisor gives up (and starts no more).
        """
        harness = Harness(count=2)
        harness.supervisor.startService()
        for _ in range(MAX_START_FAILURES):
            for worker in [s.worker for s in harness.supervisor.slots]:
                assert worker is not None
                harness.end(worker, status=3)
            harness.clock.advance(60)
        self.assertEqual(len(harness.gaveUp), 1)
        self.assertIn("no worker could start", harness.gaveUp[0])
        self.assertIn("exit status 3", harness.gaveUp[0])
        spawned = len(harness.spawned)
        harness.clock.advance(60)
        self.assertEqual(len(harness.spawned), spawned)

    def test_backoffCapped(self) -> None:
        """
        The delay doubles from 0.25 s and stops at 30 s.
        """
        self.assertEqual([backoff(n) for n in (0, 1, 2, 3, 20)], [0.0, 0.25, 0.5, 1.0, 30.0])

    def test_backoffAfterManyFailures(self) -> None:
        """
        After more failures in a row than a float's exponent holds (a slot
        retried for hours), the delay is still 30 s.
        """
        self.assertEqual(backoff(5000), 30.0)


def outOfDescriptors() -> OSError:
    """The error spawning a process raises when the supervisor has no descriptor left."""
    return OSError(errno.EMFILE, os.strerror(errno.EMFILE))


def limit64() -> Any:
    """A descriptor limit of 64 (soft and hard)."""
    from tests.unit.server.test_service import FakeLimits

    return FakeLimits(64, 64).access()


class DescriptorTests(SynchronousTestCase):
    """
    Starting a worker leaves no descriptor behind; a worker that cannot be
    started (no descriptor left) is said once and started again later.
    """

    def test_controlSocketClosedOnceAdopted(self) -> None:
        """
        The descriptor of the control connection given to the reactor to
        adopt (which adopts a duplicate of it) is closed once adopted.
        """
        harness = Harness(count=1)
        harness.start()
        [fd] = harness.adopted
        error = self.assertRaises(OSError, os.fstat, fd)
        self.assertEqual(error.errno, errno.EBADF)

    def test_failedSpawnLeavesNothingOpen(self) -> None:
        """
        When the worker cannot be spawned, both ends of its control
        connection are closed again.
        """
        harness = Harness(count=1)
        harness.spawnErrors.append(outOfDescriptors())
        made: list[socket.socket] = []
        real = socket.socketpair

        def socketpair(*args: Any) -> tuple[socket.socket, socket.socket]:
            pair = real(*args)
            made.extend(pair)
            return pair

        self.patch(socket, "socketpair", socketpair)
        harness.supervisor.startService()
        self.assertEqual(len(made), 2)
        self.assertEqual([s.fileno() for s in made], [-1, -1])

    def test_replacementRetried(self) -> None:
        """
        When a dead worker's replacement cannot be started (too many open
        files), one line says so, with the limit; the supervisor tries again
        with backoff (0.25, 0.5 ... up to L{START_RETRY_MAX} s) without a
        line per attempt, and the slot is filled as soon as a start works.
        """
        harness = Harness(fdLimits=limit64())
        first, second = harness.start()
        harness.spawnErrors.extend(outOfDescriptors() for _ in range(6))
        with capturedLogs() as events:
            harness.end(first, signal=9)
            self.assertIsNone(harness.supervisor.slots[0].worker)
            for delay in [0.25, 0.5, 1.0, 2.0, 4.0, START_RETRY_MAX]:
                harness.clock.advance(delay - 0.01)
                self.assertEqual(len(harness.spawned), 2)
                harness.clock.advance(0.01)
        self.assertEqual(len(harness.spawned), 3)
        self.assertIs(harness.supervisor.slots[0].worker, harness.worker(2))
        errors = [formatEvent(e) for e in events if e["log_level"].name == "error"]
        self.assertEqual(
            errors,
            [
                "Could not start worker 1.2: too many open files (limit 64); "
                "trying again in 0.25 s, then every 5 s at most"
            ],
        )
        self.assertEqual(harness.gaveUp, [])

    def test_givesUpWhenNoneCanBeStarted(self) -> None:
        """
        When no worker can be started at all, the supervisor gives up as it
        does when none can serve, saying why.
        """
        harness = Harness(fdLimits=limit64())
        harness.spawnErrors.extend(outOfDescriptors() for _ in range(2 * MAX_START_FAILURES))
        harness.supervisor.startService()
        harness.clock.pump([START_RETRY_MAX] * MAX_START_FAILURES)
        self.assertEqual(harness.gaveUp, ["no worker could start: too many open files (limit 64)"])
        self.assertEqual(harness.spawned, [])

    def test_reloadOutOfDescriptors(self) -> None:
        """
        A reload whose new worker cannot be started (too many open files)
        says so in one line; the old workers go on serving, untouched, and
        the next reload works.
        """
        harness = Harness(fdLimits=limit64())
        old1, old2 = harness.start()
        harness.spawnErrors.append(outOfDescriptors())
        with capturedLogs() as events:
            self.successResultOf(harness.supervisor.reload())
        self.assertEqual(
            [formatEvent(e) for e in events if e["log_level"].name == "error"],
            ["Reload failed: too many open files (limit 64); the old workers go on serving"],
        )
        self.assertEqual([s.worker for s in harness.supervisor.slots], [old1, old2])
        self.assertEqual(harness.controls[old1].value(), b"")
        d = harness.supervisor.reload()
        harness.ready(harness.worker(2))
        harness.ready(harness.worker(3))
        self.successResultOf(d)
        self.assertEqual(
            [s.worker for s in harness.supervisor.slots], [harness.worker(2), harness.worker(3)]
        )

    def test_reloadOutOfDescriptorsHalfway(self) -> None:
        """
        A reload that cannot start the second slot's new worker stops there:
        the first slot's new worker serves, the second's old one goes on.
        """
        harness = Harness(fdLimits=limit64())
        old1, old2 = harness.start()
        d = harness.supervisor.reload()
        harness.spawnErrors.append(outOfDescriptors())
        with capturedLogs() as events:
            harness.ready(harness.worker(2))
        self.successResultOf(d)
        self.assertEqual(
            [formatEvent(e) for e in events if e["log_level"].name == "error"],
            ["Reload failed: too many open files (limit 64); 1 old worker goes on serving"],
        )
        self.assertEqual([s.worker for s in harness.supervisor.slots], [harness.worker(2), old2])


class ReloadTests(SynchronousTestCase):
    """
    A reload replaces the workers one at a time, each new one serving before
    the old one retires.
    """

    def test_order(self) -> None:
        """
        Slot 1 gets a new worker; only when it is ready is the old one told
        to retire and slot 2's new worker started.
        """
        harness = Harness()
        old1, old2 = harness.start()
        d = harness.supervisor.reload()
        new1 = harness.worker(2)
        self.assertEqual(new1.slot, 1)
        self.assertEqual(harness.controls[old1].value(), b"")
        self.assertEqual(len(harness.spawned), 3)
        harness.ready(new1)
        self.assertEqual(json.loads(harness.controls[old1].value()), {"command": "retire"})
        new2 = harness.worker(3)
        self.assertEqual(new2.slot, 2)
        self.assertNoResult(d)
        harness.ready(new2)
        self.assertEqual(json.loads(harness.controls[old2].value()), {"command": "retire"})
        self.successResultOf(d)
        self.assertEqual([s.worker for s in harness.supervisor.slots], [new1, new2])

    def test_retiredWorkerEndingIsNotReplaced(self) -> None:
        """
        An old worker that ends after retiring is not replaced.
        """
        harness = Harness(count=1)
        [old] = harness.start()
        harness.supervisor.reload()
        harness.ready(harness.worker(1))
        harness.end(old, status=0)
        self.assertEqual(len(harness.spawned), 2)

    def test_replacementThatFailsStopsTheReload(self) -> None:
        """
        If the new worker ends before serving, the old one keeps serving and
        the reload stops there.
        """
        harness = Harness()
        old1, old2 = harness.start()
        d = harness.supervisor.reload()
        with capturedLogs() as events:
            harness.end(harness.worker(2), status=2)
        self.successResultOf(d)
        self.assertEqual([s.worker for s in harness.supervisor.slots], [old1, old2])
        self.assertEqual(harness.controls[old1].value(), b"")
        self.assertTrue(any("Reload stopped" in e["log_format"] for e in events))


class StopTests(SynchronousTestCase):
    """
    Stopping stops every worker and closes the sockets.
    """

    def test_stop(self) -> None:
        """
        Every worker gets SIGTERM, the sockets are closed, and the stop is
        done once every worker has ended (none is replaced).
        """
        harness = Harness()
        workers = harness.start()
        d = harness.supervisor.stopService()
        self.assertEqual([harness.spawned[i][1].signals for i in range(2)], [["TERM"], ["TERM"]])
        assert harness.sockets is not None
        self.assertTrue(harness.sockets.closed)
        harness.end(workers[0], signal=15)
        self.assertNoResult(d)
        harness.end(workers[1], signal=15)
        self.successResultOf(d)
        self.assertEqual(len(harness.spawned), 2)

    def test_stragglersKilled(self) -> None:
        """
        Workers still running two shutdown timeouts (and 5 s) later are
        killed.
        """
        harness = Harness(count=1)
        harness.start()
        harness.supervisor.stopService()
        harness.clock.advance(25)
        self.assertEqual(harness.spawned[0][1].signals, ["TERM", "KILL"])

    def test_cutShort(self) -> None:
        """
        A second stopping signal tells every worker, over its control
        connection, to abort what its drain waits for (a worker takes no
        signal for that: see L{uppercase.cli.signals.WorkerSignalHandling}).
        """
        harness = Harness()
        workers = harness.start()
        harness.supervisor.stopService()
        harness.supervisor.cutShort("on a second SIGINT")
        for worker, (_, process, _, _) in zip(workers, harness.spawned):
            self.assertEqual(process.signals, ["TERM"])
            self.assertEqual(
                harness.controls[worker].value(),
                b'{"command": "abort", "why": "on a second SIGINT to the supervisor"}\n',
            )

    def test_cutShortWithoutControl(self) -> None:
        """
        A worker whose control connection is gone is killed instead.
        """
        harness = Harness(count=1)
        [worker] = harness.start()
        harness.supervisor.stopService()
        harness.controls[worker].reset()
        harness.supervisor.cutShort("on a second SIGTERM")
        self.assertEqual(harness.spawned[0][1].signals, ["TERM", "KILL"])


class CountTests(SynchronousTestCase):
    """
    The whole server's counts are its workers' counts, those of workers
    gone included.
    """

    def counts(self, **values: int) -> dict[str, Any]:
        base = dict.fromkeys(
            ["accepted", "active", "rejected", "idleClosed", "received", "sent"], 0
        )
        return {"type": "counts", **base, **values}

    def test_totals(self) -> None:
        """
        Totals add up the workers running and the last counts of those gone;
        open connections are those of the workers running only.
        """
        harness = Harness()
        first, second = harness.start()
        harness.say(first, self.counts(accepted=3, active=1, received=30, sent=30))
        harness.say(second, self.counts(accepted=4, active=2, received=40, sent=40, rejected=1))
        totals = harness.supervisor.totals
        self.assertEqual((totals.accepted, len(totals.connections)), (7, 3))
        harness.end(first, signal=9)
        replacement = harness.worker(2)
        harness.ready(replacement)
        harness.say(replacement, self.counts(accepted=1, active=1, received=5, sent=5))
        self.assertEqual((totals.accepted, len(totals.connections)), (8, 3))
        self.assertEqual(totals.byteCounts(), (75, 75))
        self.assertEqual(totals.rejected, 1)

    def test_perWorkerMetrics(self) -> None:
        """
        The per-worker metrics show each slot's open and accepted
        connections, how often it was started, and how many workers serve.
        """
        harness = Harness()
        first, second = harness.start()
        harness.say(first, self.counts(accepted=3, active=1))
        harness.say(second, self.counts(accepted=5, active=2))
        samples = {
            (s.name, s.labels.get("worker")): s.value
            for family in WorkerCollector(harness.supervisor).collect()
            for s in family.samples
        }
        self.assertEqual(samples[("uppercase_worker_connections_active", "1")], 1)
        self.assertEqual(samples[("uppercase_worker_connections_total", "2")], 5)
        self.assertEqual(samples[("uppercase_worker_starts_total", "1")], 1)
        self.assertEqual(samples[("uppercase_workers_ready", None)], 2)


class LabelTests(SynchronousTestCase):
    """
    The log tells apart the workers that served one after another in a slot:
    the first is C{1}, those that replace it C{1.2}, C{1.3} ...
    """

    def test_replacementLabelled(self) -> None:
        """
        A dead worker's replacement is started as the slot's second worker
        (its environment says so) and logged as C{1.2}; the first worker of
        the other slot keeps its label.
        """
        harness = Harness()
        first, second = harness.start()
        with capturedLogs() as events:
            harness.end(first, signal=9)
            harness.ready(harness.worker(2))
        spec = WorkerSpec.fromEnvironment(harness.spawned[2][2])
        assert spec is not None
        self.assertEqual((spec.worker, spec.generation, spec.label), (1, 2, "1.2"))
        self.assertEqual(
            [formatEvent(e) for e in events],
            [
                "Worker 1 (pid 1000) ended: killed by SIGKILL; replacing it",
                "Started worker 1.2 (pid 1002)",
                "Worker 1.2 (pid 1002) is serving",
            ],
        )
        self.assertEqual([first.label, second.label], ["1", "2"])

    def test_reloadTellsOldFromNew(self) -> None:
        """
        During a reload the retiring worker and its replacement have
        different labels, in the supervisor's lines and in theirs (their
        standard error, relayed).
        """
        harness = Harness(count=1)
        [old] = harness.start()
        harness.supervisor.reload()
        new = harness.worker(1)
        with capturedLogs() as events:
            harness.ready(new)
            old.childDataReceived(2, b"old\n")
            new.childDataReceived(2, b"new\n")
            harness.end(old, status=0)
        self.assertEqual(
            [formatEvent(e) for e in events],
            [
                "Worker 1.2 (pid 1001) is serving",
                "Reload done",
                "[worker 1] old",
                "[worker 1.2] new",
                "Worker 1 (pid 1000) stopped: exit status 0",
            ],
        )


class RelayTests(SynchronousTestCase):
    """
    A worker's log lines reach the supervisor's log whole, as they are.
    """

    def test_wholeLinesOnly(self) -> None:
        """
        A line split over reads is relayed once complete; a last line
        without its newline is relayed when the worker ends.
        """
        harness = Harness(count=1)
        [worker] = harness.start()
        with capturedLogs() as events:
            worker.childDataReceived(1, b"[worker 1] one\n[worker 1] tw")
            worker.childDataReceived(1, b"o\n[worker 1] thr")
            worker.processEnded(Failure(ProcessDone(0)))
        raw = [e["uppercase_raw"] for e in events if "uppercase_raw" in e]
        self.assertEqual(raw, ["[worker 1] one\n", "[worker 1] two\n", "[worker 1] thr\n"])

    def jsonLine(self, worker: str, message: str) -> bytes:
        """
        A JSON log line, as a worker's L{uppercase.jsonlog.worker} writes it.
        """
        from twisted.logger import LogLevel, eventAsJSON

        event = {
            "log_format": message,
            "log_level": LogLevel.info,
            "log_namespace": "uppercase.server",
            "log_time": 1.5,
            "worker": worker,
            "size": 3,
        }
        return eventAsJSON(event).encode() + b"\n"

    def test_asEventsForJSON(self) -> None:
        """
        Relaying as events for a JSON observer (C{twist}'s), each of a
        worker's JSON lines becomes the event it describes, with its
        C{worker} field and its own fields, not one event of raw text.
        """
        harness = Harness(count=1, relayEvents="json")
        [worker] = harness.start()
        with capturedLogs() as events:
            worker.childDataReceived(
                1, self.jsonLine("1", "Got {size} bytes") + self.jsonLine("1", "Closed")
            )
        self.assertEqual(
            [(e["log_format"], e["worker"], e["log_time"]) for e in events],
            [("Got {size} bytes", "1", 1.5), ("Closed", "1", 1.5)],
        )
        self.assertEqual(events[0]["size"], 3)
        self.assertFalse(any("uppercase_raw" in e or "lines" in e for e in events))

    def test_asEventsForText(self) -> None:
        """
        Relaying as events for any other observer (C{twist}'s text,
        C{--syslog}), a worker's event says which worker wrote it before its
        message; a line that is not JSON is logged as a line.
        """
        from twisted.logger import formatEvent

        harness = Harness(count=1, relayEvents="text")
        [worker] = harness.start()
        with capturedLogs() as events:
            worker.childDataReceived(1, self.jsonLine("1", "Got {size} bytes") + b"not JSON\n")
        self.assertEqual([formatEvent(e) for e in events], ["[worker 1] Got 3 bytes", "not JSON"])

    def test_standardError(self) -> None:
        """
        What a worker writes to its standard error (not its log: Python's
        or twistd's own messages) is logged a line an event, as a warning
        that names the worker, whole lines only.
        """
        from twisted.logger import LogLevel, formatEvent

        harness = Harness(count=1)
        [worker] = harness.start()
        with capturedLogs() as events:
            worker.childDataReceived(2, b"twistd uppercase: bad\nTrace")
            worker.childDataReceived(2, b"back\n")
        errors = [e for e in events if e.get("log_level") == LogLevel.warn]
        self.assertEqual(
            [formatEvent(e) for e in errors],
            ["[worker 1] twistd uppercase: bad", "[worker 1] Traceback"],
        )
        self.assertEqual([e["worker"] for e in errors], ["1", "1"])
        self.assertFalse(any("uppercase_raw" in e for e in errors))

    def test_relayKind(self) -> None:
        """
        Lines are relayed as they are under uppercase's own observers
        (twistd's default text log, its log file, C{uppercase.jsonlog}), as
        JSON events under C{twist}'s JSON log, and as text events otherwise.
        """
        from twisted.logger import jsonFileLogObserver, textFileLogObserver

        from uppercase import jsonlog, textlog
        from uppercase.cli.server import relayKind

        cases = [
            ({"logger": textlog.stdout, "nodaemon": True}, None),
            ({"logger": "uppercase.textlog.logfile"}, None),
            ({"logger": jsonlog.stdout}, None),
            ({"logger": None, "syslog": True}, "text"),
            ({"fileLogObserverFactory": jsonFileLogObserver}, "json"),
            ({"fileLogObserverFactory": textFileLogObserver}, "text"),
        ]
        self.assertEqual([relayKind(runner) for runner, _ in cases], [k for _, k in cases])


class OptionTests(SynchronousTestCase):
    """
    C{--workers} and the shares of the limits.
    """

    def test_workerCount(self) -> None:
        """
        A whole number from 1 to L{MAX_WORKERS}, or C{auto} (one per CPU, at
        most L{MAX_WORKERS}).
        """
        self.assertEqual(workerCount("3"), 3)
        self.assertEqual(workerCount(str(MAX_WORKERS)), MAX_WORKERS)
        self.assertEqual(workerCount("auto", lambda: 8), 8)
        self.assertEqual(workerCount("AUTO", lambda: None), 1)
        self.assertEqual(workerCount("auto", lambda: 4096), MAX_WORKERS)
        for bad in ("0", "-1", "two", "1.5", str(MAX_WORKERS + 1), "99999"):
            self.assertRaises(ValueError, workerCount, bad)

    def test_tooManyWorkersIsAUsageError(self) -> None:
        """
        C{--workers} above L{MAX_WORKERS} is a usage error that says the
        range.
        """
        from twisted.python import usage

        from uppercase.cli.server import ServerOptions

        error = self.assertRaises(
            usage.UsageError, ServerOptions().parseOptions, ["--workers", "99999"]
        )
        self.assertEqual(
            str(error),
            f"--workers must be a whole number from 1 to {MAX_WORKERS}, or auto, not '99999'",
        )

    def test_descriptorLimitTooLow(self) -> None:
        """
        When the descriptor limit (raised as far as the hard limit allows)
        is too low for the workers' pipes and sockets, starting raises
        L{ListenError} saying so, before any socket is made.
        """
        from tests.unit.server.test_service import FakeLimits
        from uppercase.service import ListenError

        limits = FakeLimits(256, 300)
        harness = Harness(count=100, fdLimits=limits.access())
        error = self.assertRaises(ListenError, harness.supervisor.privilegedStartService)
        self.assertEqual(
            str(error),
            "cannot listen on tcp:9527: 100 workers need about 532 file descriptors in the "
            "supervisor, and its limit is 300: run fewer workers, or raise the limit",
        )
        self.assertIsNone(harness.sockets)
        self.assertEqual(limits.limits, (300, 300))

    def test_descriptorLimitRaised(self) -> None:
        """
        A soft descriptor limit too low for the workers is raised towards
        the hard one, and they start.
        """
        from tests.unit.server.test_service import FakeLimits

        limits = FakeLimits(256, 4096)
        harness = Harness(count=100, fdLimits=limits.access())
        harness.supervisor.privilegedStartService()
        self.assertIsNotNone(harness.sockets)
        self.assertEqual(limits.limits, (532, 4096))

    def test_shares(self) -> None:
        """
        Each worker's share of a whole-server limit is rounded up; 0 stays
        unlimited.
        """
        self.assertEqual([workerShare(10, 4), workerShare(8, 4), workerShare(0, 4)], [3, 2, 0])
