"""
What a load run prints: a progress line each second on standard error (one
live line on a terminal, plain lines otherwise), then a summary as text, or
JSON lines (C{--json}: one C{start}, one C{interval} per second, one
C{summary}; the schema is in C{docs/load-testing.md}).  Reports only read
the run's snapshots and result.
"""

from __future__ import annotations

import json
from typing import IO, Any

from uppercase.client._report import BinaryOutput, counted
from uppercase.load.histogram import PERCENTILES, Latencies
from uppercase.load.result import RunObserver, RunResult, RunView, Snapshot, describeSettings
from uppercase.load.shard import Shard, splitRun
from uppercase.load.stats import describeMismatch

__all__ = [
    "SCHEMA_VERSION",
    "describeSettings",
    "JSONLoadReport",
    "TextLoadReport",
    "describeLatency",
    "progressLine",
    "receivedBefore",
    "summaryLines",
]

SCHEMA_VERSION = 1
"""The C{--json} schema's version, in the C{start} object; it changes only
when a field changes meaning or goes away."""

TOO_SHORT = "too short to measure a rate"
"""What the summary says for a rate when the measured time is too short
(see L{uppercase.load.result.measurableSpan})."""

DISTRIBUTION = (0.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0)
"""The percentiles the JSON summary lists for a latency plot."""


def _ms(value: float) -> str:
    return f"{value:.3f}"


def describeLatency(latency: dict[str, float] | None) -> str:
    """
    The latency percentiles in ms, as in::

        p50 0.512  p90 0.801  p99 1.204  p99.9 3.100  max 12.001
    """
    if not latency:
        return "n/a"
    keys = [f"p{p:g}" for p in PERCENTILES] + ["max"]
    return "  ".join(f"{key} {_ms(latency[key])}" for key in keys)


def progressLine(snapshot: Snapshot, stream: bool = False) -> str:
    """
    One second of a run in a line, as in::

        [  3s] measuring  100 conns  123,456 msg/s  7.90 MB/s  p50 0.512 p99 1.204 ms  0 errors
    """
    parts = [f"[{snapshot.elapsed:4.0f}s]", f"{snapshot.phase:<10}"]
    parts.append(counted(snapshot.connections, "conn"))
    if not stream:
        parts.append(f"{snapshot.messagesPerSecond:,.0f} msg/s")
    parts.append(f"{snapshot.megabytesPerSecond:,.2f} MB/s")
    if snapshot.latency:
        latency = snapshot.latency
        parts.append(f"p50 {_ms(latency['p50'])} p99 {_ms(latency['p99'])} ms")
    if snapshot.backlog:
        parts.append(f"backlog {snapshot.backlog:,}")
    errors = snapshot.errors
    parts.append(counted(errors, "error"))
    return "  ".join(parts)


class _Progress(RunObserver):
    """
    The progress line on C{err}: rewritten in place on a terminal.
    """

    def __init__(self, err: IO[str], live: bool | None = None) -> None:
        self._err = err
        self._live = err.isatty() if live is None else live
        self._shown = False
        self._stream = False

    def started(self, run: RunView) -> None:
        self._stream = run.settings.stream

    def interval(self, snapshot: Snapshot) -> None:
        line = progressLine(snapshot, self._stream)
        if self._live:
            self._err.write("\r" + line + "\x1b[K")
            self._shown = True
        else:
            self._err.write(line + "\n")
        self._err.flush()

    def finished(self, result: RunResult) -> None:
        if self._shown:
            self._err.write("\n")
            self._err.flush()
            self._shown = False


def duration(seconds: float) -> str:
    """
    A measured span as a person reads it: C{2.00 s}, or below a tenth of a
    second in milliseconds (C{1.3 ms}, where C{0.00 s} would say nothing).
    """
    if seconds < 0.1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:,.2f} s"


def summaryLines(result: RunResult) -> list[str]:
    """
    The text summary of a run.
    """
    lines = [result.description]
    span = duration(result.seconds)
    if result.downSeconds:
        span += f" connected ({result.downSeconds:.2f} s with no connection left out)"
    if result.messagesPerSecond is None or result.megabytesPerSecond is None:
        rates = TOO_SHORT
        perSecond = TOO_SHORT
    else:
        rates = f"{result.megabytesPerSecond:,.2f} MB/s each way"
        perSecond = (
            f"{result.messagesPerSecond:,.0f} messages/s, "
            f"{result.megabytesPerSecond:,.2f} MB/s verified each way"
        )
    if result.mode == "stream":
        lines.append(f"{counted(result.streamBytes, 'byte')} verified in {span}: {rates}")
    else:
        lines.append(
            f"{result.sent:,} sent, {result.verified:,} verified, {result.failed:,} failed, "
            f"{result.lost:,} lost"
            + (f", {result.notSent:,} not sent" if result.notSent else "")
            + f"; measured {result.measured:,} in {span}: {perSecond}"
        )
        basis = (
            "open loop, from each message's scheduled time"
            if result.mode == "open"
            else "closed loop: service times, a stall shows as a lower rate"
        )
        lines.append(f"latency ms ({basis}): {describeLatency(result.latency)}")
    errors = result.errors
    lines.append(
        "errors: "
        + (
            ", ".join(
                f"{n:,} {kind}{receivedBefore(result.endBytes.get(kind))}"
                for kind, n in sorted(errors.items())
            )
            if errors
            else "none"
        )
    )
    for mismatch in result.mismatches:
        lines.append(f"  {describeMismatch(mismatch)}")
    if result.mismatchCount > len(result.mismatches):
        lines.append(f"  ... and {result.mismatchCount - len(result.mismatches):,} more")
    for end in result.ends:
        lines.append(f"  {end}")
    endCount = sum(errors.get(kind, 0) for kind in result.endBytes)
    if endCount > len(result.ends):
        lines.append(f"  ... and {endCount - len(result.ends):,} more connections ended early")
    tcp = result.tcp
    if result.datagrams is not None:
        lines.append(datagramLine(result.datagrams))
    elif tcp is None:
        lines.append("tcp: n/a (no TCP_INFO for these connections)")
    else:
        measured = result.latency["p50"] if result.latency else None
        lines.append(
            f"tcp (kernel, {counted(tcp['connections'], 'connection')}): "
            f"{counted(tcp['retransmits'], 'retransmitted segment')}; "
            f"rtt median {_ms(tcp['rtt_ms_median'])} ms, max {_ms(tcp['rtt_ms_max'])} ms"
            + (f" (measured p50 {_ms(measured)} ms)" if measured is not None else "")
        )
    for check in result.checks:
        lines.append(f"threshold: {check} ({'ok' if check.ok else 'FAILED'})")
    return lines


def receivedBefore(span: tuple[int, int] | None) -> str:
    """
    What the connections that ended so had received: C{ (after 64,000
    bytes received)}, C{ (after 0 to 1,000 bytes received)}; or nothing.
    """
    if span is None:
        return ""
    least, most = span
    if least == most:
        return f" (after {counted(least, 'byte')} received)"
    return f" (after {least:,} to {most:,} bytes received)"


def datagramLine(counts: dict[str, int]) -> str:
    """
    C{udp: 1,000 sent, 1,001 received, 998 verified, 0 corrupted, 2 lost
    (0.200%), 0 late, 1 duplicated, 3 reordered, 0 foreign}.
    """
    known = counts["verified"] + counts["corrupted"] + counts["lost"]
    percent = f" ({100 * counts['lost'] / known:.3f}%)" if known else ""
    parts = [f"{counts[k]:,} {k}" + (percent if k == "lost" else "") for k in counts]
    return "udp: " + ", ".join(parts)


class TextLoadReport(_Progress):
    """
    Progress on standard error, the summary on standard output.
    """

    def __init__(self, out: BinaryOutput, err: IO[str], live: bool | None = None) -> None:
        super().__init__(err, live)
        self._out = out

    def finished(self, result: RunResult) -> None:
        super().finished(result)
        self._out.write(("\n".join(summaryLines(result)) + "\n").encode())
        self._out.flush()


def startRecord(run: RunView) -> dict[str, Any]:
    """
    The C{start} object: what the run will do.
    """
    settings = run.settings
    return {
        "type": "start",
        "schema": SCHEMA_VERSION,
        "time": run.startedAt,
        "mode": settings.mode,
        "description": run.describe(),
        "connect": settings.connect,
        "connections": settings.connections,
        "pipeline": settings.effectivePipeline,
        "rate": settings.rate or None,
        "size": settings.size,
        "payload": "random" if settings.stream else settings.payload,
        "seed": settings.seed,
        "duration_s": settings.duration or None,
        "warmup_s": settings.warmup,
        "count": settings.limit or None,
        "send_proxy": settings.sendProxy or None,
    }


def intervalRecord(snapshot: Snapshot) -> dict[str, Any]:
    """
    An C{interval} object: the last second.
    """
    return {
        "type": "interval",
        "elapsed_s": round(snapshot.elapsed, 6),
        "phase": snapshot.phase,
        "connections": snapshot.connections,
        "sent": snapshot.sent,
        "verified": snapshot.verified,
        "failed": snapshot.failed,
        "errors": snapshot.errorsByKind,
        "messages_per_s": round(snapshot.messagesPerSecond, 3),
        "mb_per_s": round(snapshot.megabytesPerSecond, 6),
        "latency_ms": snapshot.latency,
        "backlog": snapshot.backlog,
    }


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def summaryRecord(result: RunResult, shard: dict[str, Any] | None = None) -> dict[str, Any]:
    """
    The C{summary} object: the whole run, or the shard of a run that
    C{shard} (L{Shard.asJSON}) names.
    """
    distribution = None
    if result.histogram:
        latencies = Latencies.decode(result.histogram)
        distribution = [[p, latencies.percentile(p)] for p in DISTRIBUTION]
        distribution[-1][1] = latencies.maximum()
    return {
        "type": "summary",
        "mode": result.mode,
        "description": result.description,
        "sent": result.sent,
        "verified": result.verified,
        "failed": result.failed,
        "lost": result.lost,
        "not_sent": result.notSent,
        "stream_bytes": result.streamBytes,
        "measured": result.measured,
        "seconds": round(result.seconds, 6),
        "messages_per_s": _rounded(result.messagesPerSecond, 3),
        "mb_per_s": _rounded(result.megabytesPerSecond, 6),
        "latency_ms": result.latency,
        "latency_distribution_ms": distribution,
        "histogram": result.histogram or None,
        "errors": result.errors,
        "mismatch_count": result.mismatchCount,
        "mismatches": [m.asJSON() for m in result.mismatches],
        "tcp": result.tcp,
        "tcp_connections": [
            {
                "connection": number,
                "retransmits": info.retransmits,
                "total_retrans": info.totalRetrans,
                "rtt_ms": info.rtt,
                "rttvar_ms": info.rttvar,
            }
            for number, info in sorted(result.tcpPerConnection.items())
            if info is not None
        ],
        "thresholds": [check.asJSON() for check in result.checks],
        "datagrams": result.datagrams,
        "ok": result.ok,
        "error": result.reason,
        "status": result.status,
        "schema": SCHEMA_VERSION,
        **(shard or {}),
        "measured_bytes": result.measuredBytes,
        "started_at": round(result.startedAt, 6),
        "ended_at": round(result.endedAt, 6),
        "ended_early": [end.asJSON() for end in result.ends],
        "received_bytes_by_error": {
            kind: {"min": least, "max": most} for kind, (least, most) in result.endBytes.items()
        },
    }


class JSONLoadReport(_Progress):
    """
    JSON lines on standard output (start, intervals, summary); progress on
    standard error as in text mode.
    """

    def __init__(
        self,
        out: BinaryOutput,
        err: IO[str],
        live: bool | None = None,
        shard: Shard | None = None,
    ) -> None:
        """
        @param shard: the shard of a run this run is (by default, the
            whole of a run of one shard).
        """
        super().__init__(err, live)
        self._out = out
        self._shard = shard
        self._shardJSON: dict[str, Any] | None = None

    def _emit(self, record: dict[str, Any]) -> None:
        self._out.write(json.dumps(record).encode() + b"\n")
        self._out.flush()

    def started(self, run: RunView) -> None:
        super().started(run)
        shard = self._shard or splitRun(run.settings)[1]
        self._shardJSON = shard.asJSON(run.settings)
        self._emit(startRecord(run))

    def interval(self, snapshot: Snapshot) -> None:
        super().interval(snapshot)
        self._emit(intervalRecord(snapshot))

    def finished(self, result: RunResult) -> None:
        super().finished(result)
        self._emit(summaryRecord(result, self._shardJSON))
