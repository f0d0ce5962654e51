"""
What a load run hands its reports: a L{Snapshot} each second and a
L{RunResult} at the end, with the thresholds (C{--max-p99}, C{--min-rate},
...) checked and the one reason, if any, the run failed.  Reports only read
these.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Protocol, Sized, Tuple

from twisted.python.failure import Failure

from uppercase.client._connect import describeConnectFailure
from uppercase.client._datagram import DatagramCounts
from uppercase.client._ending import EarlyEnd
from uppercase.client._report import counted, plainNumber
from uppercase.client._settings import ClientSettings
from uppercase.client._udp import isDatagram
from uppercase.client._verifier import Mismatch, echoHint
from uppercase.load.stats import LoadStats, describeMismatch
from uppercase.net.tcpinfo import TCPInfo, summarize

__all__ = [
    "SHORTEST_SPAN",
    "Check",
    "RunObserver",
    "RunResult",
    "RunView",
    "Snapshot",
    "buildResult",
    "checkThresholds",
    "describeSettings",
    "measurableSpan",
]

EXIT_OK = 0
EXIT_FAILURE = 1

SHORTEST_SPAN = 0.001
"""The shortest measured time (seconds) a rate is worked out over: below it
(or below one message interval of an open loop) the clock's granularity
and one message's timing would be the rate."""


@dataclass(frozen=True)
class Snapshot:
    """
    One second of a run (the last interval), and its totals so far.
    """

    elapsed: float
    phase: str
    connections: int
    sent: int
    verified: int
    failed: int
    errors: int
    errorsByKind: Dict[str, int]
    messagesPerSecond: float
    megabytesPerSecond: float
    latency: Dict[str, float] | None
    backlog: int = 0


_DECIMALS = {"ms": 3, "messages/s": 0, "MB/s": 2, "%": 3}
"""How many decimals the report gives a value in each unit."""


@dataclass(frozen=True)
class Check:
    """
    A threshold, and whether the run kept it.

    @ivar option: the option that set it (C{max-p99}).
    @ivar what: what it bounds, as a person says it (C{p99 latency}).
    @ivar limit: the bound.
    @ivar value: what was measured (L{None}: nothing to measure).
    @ivar unit: C{ms}, C{messages/s}, C{MB/s}.
    """

    option: str
    what: str
    limit: float
    value: float | None
    unit: str
    most: bool

    @property
    def ok(self) -> bool:
        if self.value is None:
            return False
        return self.value <= self.limit if self.most else self.value >= self.limit

    def __str__(self) -> str:
        limit = plainNumber(self.limit)
        if self.value is None:
            return f"no {self.what} was measured (--{self.option} {limit})"
        if self.ok:
            relation = "at most" if self.most else "at least"
        else:
            relation = "over" if self.most else "under"
        value = f"{self.value:,.{_DECIMALS.get(self.unit, 3)}f}"
        return f"{self.what} {value} {self.unit} is {relation} --{self.option} {limit}"

    def asJSON(self) -> dict[str, Any]:
        return {"option": self.option, "limit": self.limit, "value": self.value, "ok": self.ok}


@dataclass(frozen=True)
class RunResult:
    """
    How a load run went.

    @ivar seconds: the measured time: from the end of the warm-up to the
        last measured reply, less the time with no connection up (a
        prober's L{downSeconds}).
    @ivar messagesPerSecond: the verified rate over L{seconds}, or L{None}
        when L{seconds} is too short to give one (see L{measurableSpan}).
    @ivar megabytesPerSecond: likewise, in MB/s.
    @ivar downSeconds: time within the measured span with no connection up
        (a prober waiting to reconnect), left out of L{seconds}.
    @ivar failure: why the run failed, in one line, or L{None}.
    @ivar datagrams: over UDP, the datagram counts
        (L{uppercase.client._datagram.DatagramCounts}); L{None} otherwise.
    @ivar status: the exit status: 0 only if every message sent was
        verified, nothing went wrong and every threshold held.
    @ivar startedAt: when the measured span began (the end of the
        warm-up; when the run started, if it never began sending), and
    @ivar endedAt: when it ended (the last measured reply), both on the
        run's clock: Unix seconds on a real reactor.
    @ivar measuredBytes: the bytes of the L{measured} messages, each way.
    @ivar ends: the first few connections that ended early (L{EarlyEnd}:
        reset, closed early, timed out), with their bytes.
    @ivar endBytes: per kind of early end, the fewest and most bytes
        received on a connection that ended so.
    """

    description: str
    mode: str
    connections: int
    sent: int
    verified: int
    failed: int
    lost: int
    streamBytes: int
    measured: int
    seconds: float
    messagesPerSecond: float | None
    megabytesPerSecond: float | None
    latency: Dict[str, float] | None
    errors: Dict[str, int]
    mismatches: List[Mismatch]
    mismatchCount: int
    tcp: Dict[str, Any] | None
    tcpPerConnection: Dict[int, TCPInfo | None]
    checks: List[Check]
    failure: str | None
    interrupted: int | None
    status: int
    histogram: str = field(default="", repr=False)
    notSent: int = 0
    downSeconds: float = 0.0
    startedAt: float = 0.0
    endedAt: float = 0.0
    measuredBytes: int = 0
    datagrams: Dict[str, int] | None = None
    ends: List[EarlyEnd] = field(default_factory=list)
    endBytes: Dict[str, Tuple[int, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.failure is None and self.interrupted is None

    @property
    def reason(self) -> str | None:
        """
        Why the run did not succeed (its failure, or the signal that
        interrupted it), or L{None}.
        """
        if self.failure is not None:
            return self.failure
        if self.interrupted is not None:
            return interruptedBy(self.interrupted)
        return None


class RunView(Protocol):
    """
    What the results, the reports and the metrics read of a run (a
    L{uppercase.load.run.LoadRun} is one): they depend on this, and the run
    on them, never the other way.
    """

    @property
    def settings(self) -> ClientSettings:
        """What the run was asked to do."""

    @property
    def stats(self) -> LoadStats:
        """Its counts so far."""

    @property
    def startedAt(self) -> float:
        """When it started connecting."""

    @property
    def connectedCount(self) -> int:
        """Connections made, in all."""

    @property
    def protocols(self) -> Sized:
        """The connections open now."""

    @property
    def tcp(self) -> Mapping[int, TCPInfo | None]:
        """The last C{TCP_INFO} read per connection number."""

    def describe(self) -> str:
        """What the run does, in a line."""

    def downtime(self, start: float, end: float) -> float:
        """Seconds between C{start} and C{end} with no connection up."""


class RunObserver:
    """
    What a run tells its reports (each method does nothing here).
    """

    def started(self, run: RunView) -> None:
        """The run starts connecting."""

    def interval(self, snapshot: Snapshot) -> None:
        """Another second went by."""

    def finished(self, result: RunResult) -> None:
        """The run is over."""


def measurableSpan(seconds: float, rate: float = 0.0) -> bool:
    """
    Whether a rate can be worked out over C{seconds} of measured time: at
    least L{SHORTEST_SPAN}, and at least one message interval of an open
    loop at C{rate} messages/s.
    """
    return seconds >= SHORTEST_SPAN and (not rate or seconds >= 1 / rate)


def checkThresholds(
    settings: Any,
    latency: Dict[str, float] | None,
    rate: float | None,
    mbps: float | None,
    datagrams: DatagramCounts | None = None,
) -> list[Check]:
    """
    The thresholds C{settings} set, checked against what was measured;
    over UDP (C{datagrams}), C{--max-loss} always.
    """
    checks = []
    if datagrams is not None:
        loss = datagrams.lossPercent()
        checks.append(Check("max-loss", "loss", settings.maxLoss, loss, "%", True))
    for option, key, limit in (
        ("max-p50", "p50", settings.maxP50),
        ("max-p99", "p99", settings.maxP99),
        ("max-p999", "p99.9", settings.maxP999),
    ):
        if limit:
            value = latency[key] if latency else None
            checks.append(Check(option, f"{key} latency", limit, value, "ms", True))
    if settings.minRate:
        checks.append(
            Check("min-rate", "verified rate", settings.minRate, rate, "messages/s", False)
        )
    if settings.minMbps:
        checks.append(
            Check("min-mbps", "verified throughput", settings.minMbps, mbps, "MB/s", False)
        )
    return checks


def _describeErrors(errors: Dict[str, int]) -> str:
    return ", ".join(f"{count:,} {kind}" for kind, count in sorted(errors.items()))


def failureReason(
    result: dict[str, Any],
    settings: Any,
    connectFailure: Failure | None,
    interrupted: bool = False,
) -> str | None:
    """
    The one line that says why the run failed (the first reason of
    several), or L{None} if it did not.
    """
    if not result["verified"] and not result["streamBytes"] and connectFailure is not None:
        if not result["connections"] or settings.connections == 1:
            return f"cannot connect to {settings.connect}: {describeConnectFailure(connectFailure)}"
    if result["mismatchCount"]:
        mismatch = result["mismatches"][0]
        first = describeMismatch(mismatch) + echoHint(mismatch, settings.plain)
        if settings.stream:
            count = result["mismatchCount"]
            stretch = f"wrong {settings.size}-byte stretch"
            return f"{counted(count, stretch, stretch + 'es')} of the streams; first: {first}"
        wrong = result["failed"] or result["mismatchCount"]
        return f"{counted(wrong, 'wrong reply', 'wrong replies')}; first: {first}"
    errors = {k: v for k, v in result["errors"].items() if k != "mismatch"}
    if errors:
        ends = result.get("ends")
        first = f"; first: {ends[0]}" if ends else ""
        return f"errors: {_describeErrors(errors)}{first}"
    notSent = result.get("notSent", 0)
    if notSent:
        return f"{notSent:,} message{'' if notSent == 1 else 's'} not sent: no connection"
    for check in result["checks"]:
        if not check.ok:
            return str(check)
    if interrupted:
        return None  # what was not verified yet was cut short
    if settings.stream:
        if not result["streamBytes"]:
            return "no byte was verified"
        return None
    if not result["verified"]:
        return "no message was verified"
    if result.get("datagrams") is None and result["verified"] < result["sent"]:
        unanswered = result["sent"] - result["verified"]
        return f"{unanswered:,} of {counted(result['sent'], 'message')} unanswered"
    return None


def buildResult(
    run: RunView,
    failure: str | None,
    connectFailure: Failure | None,
    interrupted: int | None,
) -> RunResult:
    """
    The result of C{run}, which is over.
    """
    stats = run.stats
    settings = run.settings
    measureFrom = stats.measureFrom
    down = 0.0
    seconds = 0.0
    if stats.lastMeasured:
        down = run.downtime(measureFrom, stats.lastMeasured)
        seconds = max(stats.lastMeasured - measureFrom - down, 0.0)
    rate: float | None = None
    mbps: float | None = None
    if measurableSpan(seconds, settings.rate):
        rate = stats.measured / seconds
        mbps = stats.measuredBytes / seconds / 1e6
    latency = stats.total.summary()
    checks = checkThresholds(settings, latency, rate, mbps, stats.datagrams)
    startedAt = measureFrom or run.startedAt
    fields: dict[str, Any] = {
        "verified": stats.verified,
        "sent": stats.sent,
        "failed": stats.failed,
        "streamBytes": stats.streamBytes,
        "notSent": stats.notSent,
        "mismatchCount": stats.mismatchCount,
        "mismatches": list(stats.mismatches),
        "errors": dict(stats.errors),
        "checks": checks,
        "connections": run.connectedCount,
        "datagrams": stats.datagrams,
        "ends": stats.ends,
    }
    reason = failure or failureReason(fields, settings, connectFailure, interrupted is not None)
    if reason is None and interrupted is not None:
        status = 128 + interrupted
    else:
        status = EXIT_OK if reason is None else EXIT_FAILURE
    return RunResult(
        description=run.describe(),
        mode=settings.mode,
        connections=settings.connections,
        sent=stats.sent,
        verified=stats.verified,
        failed=stats.failed,
        lost=stats.lost,
        streamBytes=stats.streamBytes,
        measured=stats.measured,
        seconds=seconds,
        messagesPerSecond=rate,
        megabytesPerSecond=mbps,
        latency=latency,
        errors=dict(stats.errors),
        mismatches=list(stats.mismatches),
        mismatchCount=stats.mismatchCount,
        tcp=summarize(run.tcp.values()),
        tcpPerConnection=dict(run.tcp),
        checks=checks,
        failure=reason,
        interrupted=interrupted,
        status=status,
        histogram=stats.total.encode() if stats.total.count else "",
        notSent=stats.notSent,
        downSeconds=down,
        startedAt=startedAt,
        endedAt=stats.lastMeasured or startedAt,
        measuredBytes=stats.measuredBytes,
        datagrams=None if stats.datagrams is None else stats.datagrams.asDict(),
        ends=list(stats.ends),
        endBytes=dict(stats.endBytes),
    )


def interruptedBy(signum: int) -> str:
    """
    C{interrupted by SIGINT}.
    """
    return f"interrupted by {signal.Signals(signum).name}"


def describeSettings(settings: ClientSettings) -> str:
    """
    C{closed loop: 100 connections, pipeline 8, 64-byte random messages,
    10 s after 0 s of warm-up}, and the like.
    """
    n = settings.connections
    udp = isDatagram(settings.connect)
    conns = counted(n, "UDP socket" if udp else "connection")
    message = "datagram" if udp else "message"
    if settings.duration:
        length = f"for {plainNumber(settings.duration)} s"
    elif settings.limit:
        count = settings.limit * (settings.size if settings.stream else 1)
        length = (
            counted(count, "byte") + " per connection"
            if settings.stream
            else counted(count, message)
        )
    else:
        length = "until stopped"
    if settings.warmup:
        length += f" after {plainNumber(settings.warmup)} s of warm-up"
    if settings.stream:
        return f"stream: {conns}, random bytes full duplex, {length}"
    pipeline = settings.effectivePipeline
    depth = f"pipeline {pipeline}" if pipeline else "no pipeline limit"
    what = f"{settings.size}-byte {settings.payload} {message}s"
    if settings.rate:
        rate = plainNumber(settings.rate)
        return f"open loop at {rate} {message}s/s: {conns}, {depth}, {what}, {length}"
    return f"closed loop: {conns}, {depth}, {what}, {length}"
