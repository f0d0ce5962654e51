"""
The C{uppercase-client} command: run the repeating client once, print each
reply and a summary, and exit with a status scripts can rely on:

  - 0: every reply arrived and matched;
  - 1: a failure (refused, timed out, a wrong reply, closed early, ...);
  - 2: a usage error;
  - 4: a load run's C{--start-at} had passed (by more than its
    C{--start-grace}, a second by default) when it came up, so it did not
    start;
  - 128 + N: stopped by signal N (130 for SIGINT, 143 for SIGTERM);
  - 141: standard output is a closed pipe (C{| head -1}); the run ends at
    once and quietly, as SIGPIPE ends C{cat}.  Standard output that cannot
    be written otherwise (a full disk) ends it at once with status 1.

C{uppercase-client merge FILE...} merges the C{--json} summaries of a
sharded run (L{uppercase.cli.merge}); C{--workers N} runs N shards here and
merges them (L{uppercase.cli.localshards}).

The command runs the reactor itself, without Twisted's signal handlers: its
own SIGINT and SIGTERM handlers tell the run which signal arrived
(L{installInterruptHandlers}), and the run stops the reactor once, when it
has printed its summary.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
from typing import IO, Any, Callable, NoReturn, Sequence, Union, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IProtocol
from twisted.internet.protocol import Factory
from twisted.python import usage
from twisted.python.failure import Failure

from uppercase._settings import checkSeconds
from uppercase.cli.client import ClientOptions
from uppercase.cli.loadcommand import LoadCommand
from uppercase.cli.localshards import LocalShards, checkWorkers
from uppercase.cli.options import outputFailure, printAndExit, versionLine
from uppercase.cli.udpcommand import DatagramRun
from uppercase.client._connect import (
    clientEndpoint,
    connectWithin,
    describeConnectFailure,
    isCancellation,
)
from uppercase.client._ping import TLSHandshakeFailed, UppercaseClientProtocol
from uppercase.client._report import JSONReport, Output, RoundTrips, TextReport
from uppercase.client._settings import ClientSettings
from uppercase.client._udp import isDatagram
from uppercase.load.shard import INDEX_VARIABLE, ShardError, parseShard, splitRun
from uppercase.load.startat import START_GRACE, parseStartAt

COMMAND = "uppercase-client"

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

INTERRUPTS = (signal.SIGINT, signal.SIGTERM)
"""The signals that end a run early, with status 128 + their number."""

Report = Union[TextReport, JSONReport]
"""Where the replies and the summary are printed."""

Run = Union["ClientRun", LoadCommand, LocalShards, DatagramRun]
"""The ping-like run (over TCP or UDP), a load run, or local shards of one."""

SHARD_OPTIONS = ("shard", "start-at", "run-id", "workers", "start-grace")
"""The options of sharded runs: any of them makes a load run."""


class _Options(ClientOptions):
    synopsis = f"Usage: {COMMAND} " + ClientOptions.synopsis
    longdesc = (
        ClientOptions.longdesc
        + f"  '{COMMAND} merge FILE...' merges the --json summaries of a sharded "
        f"load run ('{COMMAND} merge --help')."
    )
    optFlags = [
        ["rtt", None, "Show each reply's round-trip time after it."],
        ["json", None, "Print one JSON object per reply, then a summary object."],
    ]
    optParameters = [
        [
            "shard",
            None,
            None,
            "Load: run shard I (from 0) of N: its share of --rate, --connections "
            f"and --count (auto/N: I from {INDEX_VARIABLE}).",
        ],
        [
            "start-at",
            None,
            None,
            "Load: start at this time (Unix seconds or RFC 3339, 2026-12-06T18:30:00Z); "
            f"more than {START_GRACE:g} s late: exit status 4.",
        ],
        [
            "run-id",
            None,
            None,
            "Load: the run's name in --json summaries "
            "(default: hashed from the settings every shard shares).",
        ],
        ["workers", None, None, "Load: run N shards as processes here, and merge them."],
        [
            "start-grace",
            None,
            None,
            f"Load: seconds after --start-at a shard may still start (default {START_GRACE:g}; "
            "--workers: time for its processes to come up).",
        ],
    ]

    startAt: float | None = None
    startGrace: float | None = None
    workers: int = 1

    def postOptions(self) -> None:
        super().postOptions()
        if any(self[name] is not None for name in SHARD_OPTIONS):
            self.settings = dataclasses.replace(self.settings, load=True)
        if self.settings.isLoad and self["rtt"]:
            raise usage.UsageError(
                "--rtt shows each reply of the ping-like client, not of a load run"
            )
        try:
            self._shardOptions()
        except (ShardError, ValueError) as e:
            raise usage.UsageError(str(e)) from None

    def _shardOptions(self) -> None:
        if self["start-at"] is not None:
            self.startAt = parseStartAt(self["start-at"])
        if self["start-grace"] is not None:
            if self["start-at"] is None and self["workers"] is None:
                raise ValueError(
                    "--start-grace is how late after --start-at a shard may start: give --start-at"
                )
            checkSeconds(self, "start-grace")
            self.startGrace = self["start-grace"]
        if self["workers"] is not None:
            self.workers = checkWorkers(self["workers"], self.settings)
            if self["shard"] is not None:
                raise ShardError("--workers runs shards of its own: it takes no --shard")
        index, count = (0, 1) if self["shard"] is None else parseShard(self["shard"])
        self.wholeSettings = self.settings
        self.settings, self.shard = splitRun(
            self.settings, index, count, self["run-id"] or "", self.startAt
        )

    def opt_help(self) -> NoReturn:
        """
        Display this help and exit.
        """
        printAndExit(str(self), COMMAND)

    def opt_version(self) -> NoReturn:
        """
        Display uppercase's version and exit.
        """
        printAndExit(versionLine(), COMMAND)


class _OneProtocol(Factory):
    """
    Hands out one protocol, for one connection.
    """

    def __init__(self, protocol: UppercaseClientProtocol) -> None:
        self._protocol = protocol

    def buildProtocol(self, addr: IAddress | None) -> UppercaseClientProtocol:
        return self._protocol


class ClientRun:
    """
    One run of the command: connect, exchange, print the summary and, when
    it went wrong, one line on standard error.

    @ivar protocol: the run's protocol, whose counts the summary gives.
    """

    def __init__(
        self,
        reactor: Any,
        settings: ClientSettings,
        report: Report,
        stderr: IO[str],
        output: Output | None = None,
    ) -> None:
        """
        @param output: the report's output, if it is an L{Output}: the run
            ends at once when writing to it fails.
        """
        self._reactor = reactor
        self._settings = settings
        self._report = report
        self._stderr = stderr
        self._outputError: OSError | None = None
        self._handshakeFailed = False
        if output is not None:
            output.onFailure = self._outputFailed
        self._rtts = RoundTrips()
        self.protocol = UppercaseClientProtocol.fromSettings(
            settings, clock=reactor, onReply=self._reply
        )
        self._connecting: Deferred[IProtocol] | None = None
        self._signal: int | None = None
        self._ended: Deferred[int] = Deferred()

    def start(self) -> Deferred[int]:
        """
        Connect and run.

        @return: fires with the exit status once the run is over and its
            summary printed; never fails.
        """
        try:
            endpoint = clientEndpoint(self._reactor, self._settings.connect)
        except Exception as e:
            self._connectFailed(Failure(e))
            return self._ended
        self._connecting = connectWithin(
            endpoint, _OneProtocol(self.protocol), self._settings.timeout, self._reactor
        )
        self._connecting.addCallbacks(self._connected, self._connectFailed)
        return self._ended

    def interrupt(self, signum: int) -> None:
        """
        Stop early because of signal C{signum}: cancel the connection
        attempt, or close the connection (aborting it if it is still there
        after a short grace).  A second signal aborts the connection at
        once.  After the run has ended, nothing happens.
        """
        if self._ended.called:
            return
        if self._signal is not None:
            self.protocol.stop(grace=0)
            return
        self._signal = signum
        if self._connecting is not None:
            self._connecting.cancel()
        else:
            self.protocol.stop()

    def _outputFailed(self, error: OSError) -> None:
        """
        The output cannot be written: end the run at once (from the
        reactor, not from inside the reply that was being printed).
        """
        if self._outputError is None:
            self._outputError = error
            self._reactor.callLater(0, self._stopNow)

    def _stopNow(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        else:
            self.protocol.stop(grace=0)

    def _reply(self, sequence: int, reply: bytes, rtt: float) -> None:
        self._rtts.add(rtt)
        self._report.reply(sequence, reply, rtt)

    def _connectFailed(self, failure: Failure) -> None:
        self._connecting = None
        if isCancellation(failure) and (self._signal, self._outputError) != (None, None):
            self._finish(None)
        else:
            reason = describeConnectFailure(failure)
            self._finish(f"cannot connect to {self._settings.connect}: {reason}")

    def _connected(self, protocol: object) -> None:
        self._connecting = None
        self.protocol.done.addCallbacks(lambda _: self._finish(None), self._failed)

    def _failed(self, failure: Failure) -> None:
        if failure.check(TLSHandshakeFailed):
            # What was written never left the TLS layer.
            self._handshakeFailed = True
        self._finish(failure.getErrorMessage())

    def _finish(self, error: str | None) -> None:
        """
        Print the summary and the error, if any, and end with the status
        they call for: output that could not be written ends the run as
        L{outputFailure} says; a failure is a failure even if a signal came
        after it; a run that ended because of a signal is 128 + its number.
        """
        if self._ended.called:
            return
        if self._outputError is not None:
            status, error = outputFailure(self._outputError)
        elif error is not None:
            status = EXIT_FAILURE
        elif self._signal is not None:
            error = f"interrupted by {signal.Signals(self._signal).name}"
            status = 128 + self._signal
        else:
            status = EXIT_OK
        protocol = self.protocol
        sent = 0 if self._handshakeFailed else protocol.sent
        self._report.summary(sent, protocol.received, protocol.verified, self._rtts, error)
        if error is not None:
            try:
                self._stderr.write(f"{COMMAND}: {error}\n")
                self._stderr.flush()
            except OSError:
                pass
        self._ended.callback(status)


def prepare(reactor: Any, argv: Sequence[str]) -> Run:
    """
    Parse C{argv} into a run that prints to C{sys.stdout} and
    C{sys.stderr}: the ping-like client, or a load run when any load option
    is set; nothing connects until it is started.

    @raise usage.UsageError: for a bad option.
    """
    options = _Options()
    options.parseOptions(list(argv))
    out = Output(sys.stdout.buffer)
    if options.workers > 1:
        return LocalShards(
            reactor,
            options.wholeSettings,
            options.workers,
            out,
            cast(IO[str], Output(sys.stderr)),
            json=options["json"],
            runId=options["run-id"],
            startAt=options.startAt,
            startGrace=options.startGrace,
        )
    if options.settings.isLoad:
        # Progress lines go to standard error: a closed pipe there
        # (2>&1 | head -1) ends the run too.
        err = Output(sys.stderr)
        return LoadCommand(
            reactor,
            options.settings,
            out,
            cast(IO[str], err),
            json=options["json"],
            outputs=(out, err),
            shard=options.shard,
            startAt=options.startAt,
            startGrace=START_GRACE if options.startGrace is None else options.startGrace,
        )
    report = JSONReport(out) if options["json"] else TextReport(out, options["rtt"])
    if isDatagram(options.settings.connect):
        return DatagramRun(reactor, options.settings, report, sys.stderr, out)
    return ClientRun(reactor, options.settings, report, sys.stderr, out)


def installInterruptHandlers(
    reactor: Any,
    interrupt: Callable[[int], None],
    setHandler: Callable[[int, Any], object] = signal.signal,
    getHandler: Callable[[int], object] = signal.getsignal,
) -> None:
    """
    Handle SIGINT and SIGTERM by calling C{interrupt} with the signal's
    number, in the reactor's thread (the only thing a signal handler may
    ask of the reactor is C{callFromThread}).

    A signal ignored when the command starts stays ignored, as Twisted's
    own handlers leave it: a shell starts background jobs with SIGINT
    ignored, so that a Ctrl-C meant for the foreground does not stop them.
    """

    def handler(signum: int, frame: object) -> None:
        reactor.callFromThread(interrupt, signum)

    for signum in INTERRUPTS:
        if getHandler(signum) != signal.SIG_IGN:
            setHandler(signum, handler)


def execute(reactor: Any, argv: Sequence[str]) -> int:
    """
    Run the command with C{argv}, running C{reactor} until the run is over.

    @return: the exit status.
    """
    if list(argv[:1]) == ["merge"]:
        from uppercase.cli.merge import merge

        return merge(argv[1:])
    try:
        run = prepare(reactor, argv)
    except usage.UsageError as e:
        sys.stderr.write(f"{COMMAND}: {e}\nTry '{COMMAND} --help' for help.\n")
        sys.stderr.flush()
        return EXIT_USAGE
    installInterruptHandlers(reactor, run.interrupt)
    statuses: list[int] = []

    def start() -> None:
        ended = run.start()
        ended.addCallback(statuses.append)
        ended.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start)
    reactor.run(installSignalHandlers=False)
    return statuses[0] if statuses else EXIT_FAILURE


def run() -> NoReturn:
    """
    The console-script entry point.
    """
    from twisted.internet import reactor

    sys.exit(execute(reactor, sys.argv[1:]))
