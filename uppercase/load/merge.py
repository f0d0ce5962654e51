"""
The exact merge of a sharded run: find the shards' C{--json} summaries among
whatever else a stream holds (progress and interval lines, logs, garbage,
C{kubectl logs --prefix}'s pod names), check that they are the shards of one
run, each once and none missing, and add them up into one L{RunResult}: the
counts and errors summed, the HDR histograms added (never percentiles
averaged, so the merged p99 is the p99 of every message), the measured span
from the first shard's start to the last one's end, and the run's thresholds
checked against the whole.  Pure: lines in, a result or a L{MergeError} out.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Iterable, Iterator, Mapping, Sequence

from uppercase.client._datagram import DatagramCounts
from uppercase.client._ending import EarlyEnd
from uppercase.client._report import counted
from uppercase.client._settings import ClientSettings
from uppercase.client._verifier import Mismatch
from uppercase.load.histogram import Latencies
from uppercase.load.result import (
    EXIT_FAILURE,
    EXIT_OK,
    RunResult,
    checkThresholds,
    failureReason,
    measurableSpan,
)
from uppercase.load.shard import RATE_UNITS, THRESHOLDS
from uppercase.load.stats import KEPT_ENDS, KEPT_MISMATCHES
from uppercase.net.tcpinfo import TCPInfo, summarize

__all__ = [
    "MergeError",
    "ShardSummary",
    "checkShards",
    "findSummaries",
    "mergeShards",
    "wholeRun",
]


class MergeError(Exception):
    """
    The summaries cannot be merged; the message says why, in one line.
    """


@dataclass(frozen=True)
class ShardSummary:
    """
    One shard's summary record, and where it was found
    (C{shard-0.json line 12}).
    """

    record: Mapping[str, Any]
    where: str

    @property
    def index(self) -> int:
        return int(self.record["shard"])


_REQUIRED: dict[str, Any] = {
    "run_id": str,
    "shard": int,
    "shards": int,
    "share": dict,
    "mode": str,
    "sent": int,
    "verified": int,
    "failed": int,
    "lost": int,
    "not_sent": int,
    "stream_bytes": int,
    "measured": int,
    "measured_bytes": int,
    "errors": dict,
    "mismatch_count": int,
    "mismatches": list,
    "tcp_connections": list,
    "started_at": (int, float),
    "ended_at": (int, float),
    "status": int,
}


def _summaryIn(line: str | bytes) -> Mapping[str, Any] | None:
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    start = line.find("{")
    if start < 0:
        return None
    try:
        record = json.loads(line[start:])
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("type") != "summary" or "run_id" not in record:
        return None  # another record, or the ping client's summary
    return record


def findSummaries(lines: Iterable[str | bytes], source: str) -> Iterator[ShardSummary]:
    """
    The shard summaries among C{lines} (read from C{source}): each line
    holding a JSON object of type C{summary} with a C{run_id}, from its
    first C{{} on; every other line is passed over.
    """
    for number, line in enumerate(lines, 1):
        record = _summaryIn(line)
        if record is not None:
            yield ShardSummary(record, f"{source} line {number}")


def _checkRecord(summary: ShardSummary) -> None:
    for key, kind in _REQUIRED.items():
        value = summary.record.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise MergeError(f"{summary.where}: not a shard summary ({key!r} is missing or wrong)")


def _listed(indexes: Sequence[int]) -> str:
    return ", ".join(str(i) for i in indexes)


def checkShards(
    summaries: Sequence[ShardSummary],
    expect: int | None = None,
    sources: str = "",
    partial: bool = False,
) -> list[ShardSummary]:
    """
    The shards of one run, in order, each once.

    @param expect: how many shards there must be (C{--expect-shards});
        by default, as many as the summaries say the run has.
    @param partial: whether shards may be missing (a run cut short, whose
        merge says what it has).
    @raise MergeError: when there is none, when one is of another run, is
        there twice or (unless C{partial}) is missing.
    """
    if not summaries:
        raise MergeError(f"no shard summary in {sources or 'the input'}")
    for summary in summaries:
        _checkRecord(summary)
    first = summaries[0]
    runId = first.record["run_id"]
    count = first.record["shards"]
    for summary in summaries[1:]:
        if summary.record["run_id"] != runId:
            raise MergeError(
                f"{summary.where} is of another run (run_id {summary.record['run_id']}, "
                f"not {runId} as {first.where})"
            )
        if summary.record["shards"] != count:
            raise MergeError(
                f"{summary.where} says its run has {summary.record['shards']} shards, "
                f"{first.where} {count}"
            )
    if expect is not None and expect != count:
        raise MergeError(
            f"--expect-shards {expect}, but the summaries are of a run of "
            f"{counted(count, 'shard')} (run_id {runId})"
        )
    seen: dict[int, ShardSummary] = {}
    for summary in summaries:
        index = summary.index
        if not 0 <= index < count:
            raise MergeError(f"{summary.where} is shard {index}, not one of 0 to {count - 1}")
        if index in seen:
            raise MergeError(
                f"shard {index} of {count} is there twice: {seen[index].where} and {summary.where}"
            )
        seen[index] = summary
    missing = [i for i in range(count) if i not in seen]
    if missing and not partial:
        if len(missing) == 1:
            raise MergeError(f"shard {missing[0]} of {count} is missing (run_id {runId})")
        raise MergeError(f"shards {_listed(missing)} of {count} are missing (run_id {runId})")
    return [seen[i] for i in range(count) if i in seen]


def _mismatch(data: Mapping[str, Any], offset: int) -> Mismatch:
    return Mismatch(
        connection=int(data["connection"]) + offset,
        message=int(data["message"]),
        offset=int(data["offset"]),
        messageOffset=int(data["message_offset"]),
        expected=bytes.fromhex(data["expected_hex"]),
        received=bytes.fromhex(data["received_hex"]),
        excerptStart=int(data["excerpt_start"]),
    )


def _interrupted(record: Mapping[str, Any]) -> int | None:
    status = record["status"]
    error = record.get("error") or ""
    if status > 128 and error.startswith("interrupted by "):
        return int(status - 128)
    return None


def mergeShards(
    shards: Sequence[ShardSummary], thresholds: Mapping[str, float] | None = None
) -> RunResult:
    """
    The result of the whole run whose shards (as L{checkShards} gives
    them) are C{shards}.  Connections are numbered through the run: shard
    1's first connection comes after shard 0's last.

    @param thresholds: the thresholds to check (by option, C{max-p99}...);
        by default, those the run was asked for (its C{run_thresholds}).
    @raise MergeError: for a summary whose histogram or mismatches cannot
        be read.
    """
    records = [s.record for s in shards]
    first = records[0]
    totals: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    latencies = Latencies()
    mismatches: list[Mismatch] = []
    infos: list[TCPInfo] = []
    tcpPerConnection: dict[int, TCPInfo | None] = {}
    offset = 0
    spans: list[tuple[float, float]] = []
    rate = 0.0
    datagrams: Counter[str] | None = None
    ends: list[EarlyEnd] = []
    endBytes: dict[str, tuple[int, int]] = {}
    for summary in shards:
        record = summary.record
        for key in ("sent", "verified", "failed", "lost", "not_sent", "stream_bytes"):
            totals[key] += record[key]
        for key in ("measured", "measured_bytes", "mismatch_count"):
            totals[key] += record[key]
        errors.update({str(k): int(v) for k, v in record["errors"].items()})
        try:
            if record.get("datagrams") is not None:
                datagrams = datagrams if datagrams is not None else Counter()
                datagrams.update({str(k): int(v) for k, v in record["datagrams"].items()})
            if record.get("histogram"):
                latencies.add(Latencies.decode(record["histogram"]))
            for data in record["mismatches"]:
                if len(mismatches) < KEPT_MISMATCHES:
                    mismatches.append(_mismatch(data, offset))
            for data in record.get("ended_early") or ():
                if len(ends) < KEPT_ENDS:
                    ends.append(
                        EarlyEnd(
                            int(data["connection"]) + offset,
                            str(data["kind"]),
                            int(data["received_bytes"]),
                            int(data["owed_bytes"]),
                        )
                    )
            for kind, span in (record.get("received_bytes_by_error") or {}).items():
                least, most = int(span["min"]), int(span["max"])
                if kind in endBytes:
                    least = min(least, endBytes[kind][0])
                    most = max(most, endBytes[kind][1])
                endBytes[kind] = (least, most)
            for data in record["tcp_connections"]:
                info = TCPInfo(
                    int(data["retransmits"]),
                    int(data["total_retrans"]),
                    float(data["rtt_ms"]),
                    float(data["rttvar_ms"]),
                )
                infos.append(info)
                tcpPerConnection[int(data["connection"]) + offset] = info
        except Exception as e:
            raise MergeError(f"{summary.where}: cannot read its summary: {e}") from None
        share = record["share"]
        offset += int(share.get("connections") or 0)
        rate += float(share.get("rate") or 0)
        if record["measured"] or record["stream_bytes"]:
            spans.append((float(record["started_at"]), float(record["ended_at"])))
    startedAt = min((a for a, _ in spans), default=float(first["started_at"]))
    endedAt = max((b for _, b in spans), default=startedAt)
    seconds = endedAt - startedAt if spans else 0.0
    messagesPerSecond: float | None = None
    megabytesPerSecond: float | None = None
    if measurableSpan(seconds, rate):
        messagesPerSecond = totals["measured"] / seconds
        megabytesPerSecond = totals["measured_bytes"] / seconds / 1e6
    asked = dict(first.get("run_thresholds") or {}) if thresholds is None else dict(thresholds)
    values: dict[str, Any] = {
        name: float(asked.get(option) or 0.0) for option, name in THRESHOLDS.items()
    }
    limits = replace(ClientSettings(), **values)
    latency = latencies.summary()
    counts = None if datagrams is None else DatagramCounts(**datagrams)
    checks = checkThresholds(limits, latency, messagesPerSecond, megabytesPerSecond, counts)
    mode = str(first["mode"])
    size = int(first.get("size") or limits.size)
    fields: dict[str, Any] = {
        "verified": totals["verified"],
        "sent": totals["sent"],
        "failed": totals["failed"],
        "streamBytes": totals["stream_bytes"],
        "notSent": totals["not_sent"],
        "mismatchCount": totals["mismatch_count"],
        "mismatches": mismatches,
        "errors": dict(errors),
        "checks": checks,
        "connections": offset,
        "datagrams": counts,
        "ends": ends,
    }
    interrupted = next((i for i in map(_interrupted, records) if i is not None), None)
    cannotConnect = [
        r["error"] for r in records if str(r.get("error") or "").startswith("cannot connect")
    ]
    reason: str | None
    if cannotConnect and not totals["verified"] and not totals["stream_bytes"]:
        reason = cannotConnect[0]
    else:
        reason = failureReason(
            fields,
            replace(limits, stream=mode == "stream", size=size),
            None,
            interrupted is not None,
        )
    if reason is None:
        failed = [r for r in records if r["status"] and _interrupted(r) is None]
        if failed:
            record = failed[0]
            reason = f"shard {record['shard']}: {record.get('error') or 'failed'}"
    if reason is None and interrupted is not None:
        status = 128 + interrupted
    else:
        status = EXIT_OK if reason is None else EXIT_FAILURE
    return RunResult(
        description=str(first.get("run_description") or first.get("description") or ""),
        mode=mode,
        connections=offset,
        sent=totals["sent"],
        verified=totals["verified"],
        failed=totals["failed"],
        lost=totals["lost"],
        streamBytes=totals["stream_bytes"],
        measured=totals["measured"],
        seconds=seconds,
        messagesPerSecond=messagesPerSecond,
        megabytesPerSecond=megabytesPerSecond,
        latency=latency,
        errors=dict(errors),
        mismatches=mismatches,
        mismatchCount=totals["mismatch_count"],
        tcp=summarize(infos),
        tcpPerConnection=tcpPerConnection,
        checks=checks,
        failure=reason,
        interrupted=interrupted,
        status=status,
        histogram=latencies.encode() if latencies.count else "",
        notSent=totals["not_sent"],
        startedAt=startedAt,
        endedAt=endedAt,
        measuredBytes=totals["measured_bytes"],
        datagrams=None if counts is None else counts.asDict(),
        ends=ends,
        endBytes=endBytes,
    )


def wholeRun(
    shards: Sequence[ShardSummary], thresholds: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """
    What the merged summary says of the run in place of a shard's keys:
    its identity, description and thresholds, C{shard} null, and as its
    C{share} the whole (connections, rate and count of every shard).
    """
    first = shards[0].record
    shares = [s.record["share"] for s in shards]
    rate = sum(round(float(s.get("rate") or 0) * RATE_UNITS) for s in shares) / RATE_UNITS
    count = sum(int(s.get("count") or 0) for s in shares)
    if first["mode"] == "stream":
        count = int(shares[0].get("count") or 0)  # per connection: not split
    asked = (first.get("run_thresholds") or {}) if thresholds is None else thresholds
    return {
        "run_id": first["run_id"],
        "run_description": first.get("run_description"),
        "run_thresholds": dict(asked),
        "shard": None,
        "shards": first["shards"],
        "size": first.get("size"),
        "share": {
            "connections": sum(int(s.get("connections") or 0) for s in shares),
            "rate": rate or None,
            "count": count or None,
        },
    }
