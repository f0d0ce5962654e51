"""
C{uppercase-client --workers N}: a load run as N shard processes on this
machine, for one with more cores than one client process can use.  Each is
C{uppercase-client --shard I/N --json} with the same settings, a shared
C{--start-at} L{lead} seconds ahead (with as much again of grace: see
there) and one run identity; their interval
records make one progress line, their summaries one merged report (as
C{uppercase-client merge} gives it), with the exit status of a single run.

Ctrl-C or SIGTERM stops every shard (each is sent SIGTERM, and a second
signal sends a second, which aborts their connections) and the shards'
summaries are still merged and reported; the shards ignore SIGINT
themselves, so that the terminal's Ctrl-C, which reaches the whole process
group, reaches them once, from here.  A shard that dies without a summary is
reported, and the run fails (status 1).
"""

from __future__ import annotations

import json
import signal
import sys
from collections import Counter
from typing import IO, Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.process import reapAllProcesses
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from uppercase._settings import wholeNumber
from uppercase.cli.merge import report
from uppercase.cli.options import outputFailure
from uppercase.client._report import BinaryOutput, counted
from uppercase.client._settings import ClientSettings
from uppercase.load.merge import (
    MergeError,
    ShardSummary,
    checkShards,
    findSummaries,
    mergeShards,
    wholeRun,
)
from uppercase.load.report import progressLine
from uppercase.load.result import Snapshot
from uppercase.load.shard import ShardError, runIdentity, splitRun
from uppercase.load.startat import START_GRACE, waitUntil

__all__ = ["FLAGS", "LocalShards", "checkWorkers", "lead", "shardArgv"]

LEAD = 2.0
"""Seconds of L{lead} for any number of shards."""

LEAD_PER_SHARD = 0.5
"""Seconds more of L{lead} per shard: each interpreter takes about 0.3 s of
one core to come up."""


def lead(workers: int) -> float:
    """
    Seconds ahead of now the shared C{--start-at} of C{workers} local shards
    is set: time for that many interpreters to come up on a busy machine.
    Each shard is also given as much again of C{--start-grace}: a shard
    that comes up after the start (a loaded machine) starts late, and the
    merged span shows it, rather than failing the run; one later than that
    is stuck, and fails it.
    """
    return LEAD + LEAD_PER_SHARD * workers


EXIT_FAILURE = 1

FLAGS = {"stream": "--stream", "failFast": "--fail-fast", "plain": "--plain"}
"""The flags of L{ClientSettings} (setting: option), which its C{toArgv}
leaves out: a shard is given each that is set.  (Its C{load} flag needs
none: the options C{toArgv} gives are load options.)"""

_BOOT = (
    "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "from uppercase.cli.command import run; run()"
)
"""What a shard process runs: the command, with SIGINT ignored (see the
module's docstring)."""

_PREFIX = "uppercase-client: "


def checkWorkers(text: object, settings: ClientSettings) -> int:
    """
    The number C{--workers} gives, checked against C{settings}.

    @raise ValueError: naming the option, when it is not a number of
        processes, or the run cannot be split that many ways.
    """
    try:
        workers = wholeNumber(text)
    except ValueError:
        raise ValueError(f"--workers must be a whole number of processes, not {text!r}") from None
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, not {text!r}")
    if workers > 1 and settings.metrics:
        raise ValueError("--workers runs several processes: they cannot share one --metrics")
    for index in range(workers):
        try:
            splitRun(settings, index, workers)
        except ShardError as e:
            raise ValueError(str(e).replace(f"--shard {index}/", "--workers ")) from None
    return workers


def shardArgv(
    settings: ClientSettings,
    index: int,
    count: int,
    startAt: float,
    runId: str,
    grace: float = START_GRACE,
) -> list[str]:
    """
    The options of shard C{index} of C{count} of a run with C{settings},
    which starts at C{startAt}, or at most C{grace} seconds later.
    """
    argv = settings.toArgv()
    argv += ["--shard", f"{index}/{count}", "--start-at", repr(startAt)]
    argv += ["--start-grace", repr(grace)]
    argv += ["--run-id", runId, "--json"]
    argv += [flag for name, flag in FLAGS.items() if getattr(settings, name)]
    return argv


class _Shard(ProcessProtocol):
    """
    One shard process: its lines, as they come, to its L{LocalShards}.
    Of its standard output it keeps its summaries (L{summaries}) and its
    last interval record, however long it runs.
    """

    def __init__(self, owner: LocalShards, index: int) -> None:
        self.index = index
        self._owner = owner
        self._out = b""
        self._err = b""
        self._seen = 0
        self.summaries: list[ShardSummary] = []
        self.interval: dict[str, Any] | None = None
        self.fresh = False
        self.ended: Failure | None = None

    def outReceived(self, data: bytes) -> None:
        *lines, self._out = (self._out + data).split(b"\n")
        for line in lines:
            self._keep(line)
            if line.startswith(b'{"type": "interval"'):
                try:
                    self.interval = json.loads(line)
                except ValueError:
                    continue
                self.fresh = True

    def _keep(self, line: bytes) -> None:
        self._seen += 1
        if b'"summary"' in line:
            where = f"shard {self.index}"
            self.summaries += findSummaries([line], where, self._seen)

    def errReceived(self, data: bytes) -> None:
        *lines, self._err = (self._err + data).split(b"\n")
        for line in lines:
            self._owner.shardSaid(self.index, line.decode("utf-8", "replace"))

    def processEnded(self, reason: Failure) -> None:
        if self._out:
            self._keep(self._out)
        if self._err:
            self._owner.shardSaid(self.index, self._err.decode("utf-8", "replace"))
        self.ended = reason
        self._owner.shardEnded(self)


def _describeEnd(reason: Failure) -> str:
    value = reason.value
    if isinstance(value, ProcessTerminated) and value.signal is not None:
        return f"was killed by {signal.Signals(value.signal).name}"
    if isinstance(value, (ProcessDone, ProcessTerminated)):
        return f"exited with status {value.exitCode}"
    return f"ended: {reason.getErrorMessage()}"


class LocalShards:
    """
    N shard processes of one run, and their merge.
    """

    def __init__(
        self,
        reactor: Any,
        settings: ClientSettings,
        workers: int,
        out: BinaryOutput,
        err: IO[str],
        *,
        json: bool = False,
        runId: str | None = None,
        startAt: float | None = None,
        startGrace: float | None = None,
        executable: str = sys.executable,
        live: bool | None = None,
        reap: bool = True,
    ) -> None:
        """
        @param startAt: when the shards start (C{--start-at}); by default
            L{lead} seconds from now.
        @param startGrace: how late after it a shard may still start
            (C{--start-grace}); by default, L{START_GRACE} after a
            C{startAt} given, as much as L{lead} after one chosen here.
        @param reap: whether to reap the shard processes on SIGCHLD
            (tests on a fake reactor pass C{False}).
        """
        self._reap = reap
        self._reactor = reactor
        self._settings = settings
        self._workers = workers
        self._out = out
        self._err = err
        self._json = json
        self._runId = runId
        self._startAt = startAt
        self._startGrace = startGrace
        self._executable = executable
        self._live = err.isatty() if live is None else live
        self._shown = False
        self._signal: int | None = None
        self.shards: list[_Shard] = []
        self._processes: list[Any] = []
        self._ticker = LoopingCall(self._progress)
        self._ticker.clock = reactor
        self._calls: list[Any] = []
        self._ended: Deferred[int] = Deferred()

    def start(self) -> Deferred[int]:
        """
        Start the shards.

        @return: fires with the exit status once every shard has ended and
            the merge is reported; never fails.
        """
        reactor = self._reactor
        if self._reap:
            # The command runs the reactor without its signal handlers, so
            # without the SIGCHLD handler that reaps child processes.
            signal.signal(signal.SIGCHLD, self._childEnded)
        if self._startAt is not None:
            at = self._startAt
            grace = START_GRACE if self._startGrace is None else self._startGrace
        else:
            at = reactor.seconds() + lead(self._workers)
            grace = lead(self._workers) if self._startGrace is None else self._startGrace
        runId = self._runId or runIdentity(self._settings, self._workers, at)
        for index in range(self._workers):
            shard = _Shard(self, index)
            argv = shardArgv(self._settings, index, self._workers, at, runId, grace)
            self.shards.append(shard)
            self._processes.append(
                reactor.spawnProcess(
                    shard, self._executable, [self._executable, "-c", _BOOT, *argv], env=None
                )
            )
        waiting = waitUntil(reactor, at, self._tell, grace=float("inf"))
        self._calls.append(waiting)
        waiting.addCallbacks(lambda _: self._startProgress(), lambda f: None)
        return self._ended

    def _childEnded(self, signum: int, frame: object) -> None:
        self._reactor.callFromThread(reapAllProcesses)

    def _startProgress(self) -> None:
        if not self._ended.called and not self._ticker.running:
            # Between the shards' own seconds, which began at the start time.
            self._calls.append(self._reactor.callLater(0.5, self._ticker.start, 1.0, False))

    def _tell(self, line: str) -> None:
        self._write(line + "\n")

    def _write(self, text: str) -> None:
        try:
            self._err.write(text)
            self._err.flush()
        except OSError:
            pass

    def interrupt(self, signum: int) -> None:
        """
        Stop every shard (C{SIGTERM} to each: one per signal given).
        """
        if self._ended.called:
            return
        if self._signal is None:
            self._signal = signum
        for shard, process in zip(self.shards, self._processes):
            if shard.ended is None:
                try:
                    process.signalProcess("TERM")
                except Exception:
                    pass

    def shardSaid(self, index: int, line: str) -> None:
        """
        A line from shard C{index}'s standard error: its progress lines and
        countdown are replaced by the merged ones; anything else is passed
        on, naming the shard.
        """
        if not line.strip() or line.startswith("[") or line.startswith("starting in "):
            return
        if line.startswith(_PREFIX):
            line = line[len(_PREFIX) :]
        self._endLine()
        self._write(f"{_PREFIX}shard {index}: {line}\n")

    def _endLine(self) -> None:
        if self._shown:
            self._write("\n")
            self._shown = False

    def _progress(self) -> None:
        if not any(s.fresh for s in self.shards):
            return  # nothing new: no line
        records = [s.interval for s in self.shards if s.interval is not None and s.ended is None]
        for shard in self.shards:
            shard.fresh = False
        if not records:
            return
        errors: Counter[str] = Counter()
        for record in records:
            errors.update(record["errors"])
        phases = Counter(record["phase"] for record in records)
        snapshot = Snapshot(
            elapsed=max(record["elapsed_s"] for record in records),
            phase=phases.most_common(1)[0][0],
            connections=sum(record["connections"] for record in records),
            sent=sum(record["sent"] for record in records),
            verified=sum(record["verified"] for record in records),
            failed=sum(record["failed"] for record in records),
            errors=sum(errors.values()),
            errorsByKind=dict(errors),
            messagesPerSecond=sum(record["messages_per_s"] for record in records),
            megabytesPerSecond=sum(record["mb_per_s"] for record in records),
            latency=None,
            backlog=sum(record["backlog"] for record in records),
        )
        line = progressLine(snapshot, self._settings.stream) + "  " + counted(len(records), "shard")
        if self._live:
            self._write("\r" + line + "\x1b[K")
            self._shown = True
        else:
            self._write(line + "\n")

    def shardEnded(self, shard: _Shard) -> None:
        """
        Shard C{shard}'s process is over: once all are, merge.
        """
        if all(s.ended is not None for s in self.shards):
            self._finish()

    def _finish(self) -> None:
        if self._ticker.running:
            self._ticker.stop()
        for call in self._calls:
            if isinstance(call, Deferred):
                call.cancel()
            elif call.active():
                call.cancel()
        self._endLine()
        found = []
        dead: list[str] = []
        for shard in self.shards:
            summaries = shard.summaries
            found += summaries
            if not summaries and self._signal is None:
                assert shard.ended is not None
                dead.append(f"shard {shard.index} {_describeEnd(shard.ended)} without a summary")
        status = self._merge(found, partial=bool(dead) or self._signal is not None)
        for line in dead:
            self._say(line)
        if dead:
            status = EXIT_FAILURE
        self._ended.callback(status)

    def _merge(self, found: list[Any], partial: bool) -> int:
        try:
            shards = checkShards(found, self._workers, "the shards' output", partial)
            result = mergeShards(shards)
        except MergeError as e:
            self._say(str(e))
            return 128 + self._signal if self._signal is not None else EXIT_FAILURE
        try:
            report(result, wholeRun(shards), self._out, self._json)
            error = getattr(self._out, "error", None)
            if error is not None:
                raise error
        except OSError as e:
            status, line = outputFailure(e)
            if line is not None:
                self._say(line)
            return status
        if self._signal is not None and result.failure is None:
            # The shards were interrupted by this command's SIGTERM.
            self._say(f"interrupted by {signal.Signals(self._signal).name}")
            return 128 + self._signal
        if result.reason is not None:
            self._say(result.reason)
        return result.status

    def _say(self, line: str) -> None:
        self._write(f"{_PREFIX}{line}\n")
