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
import signal
from collections import Counter
from dataclasses import dataclass, fields, replace
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
    "runThresholds",
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


def findSummaries(
    lines: Iterable[str | bytes], source: str, first: int = 1
) -> Iterator[ShardSummary]:
    """
    The shard summaries among C{lines} (read from C{source}, the first
    being its line C{first}): each line holding a JSON object of type
    C{summary} with a C{run_id}, from its first opening brace on; every other line
    is passed over.
    """
    for number, line in enumerate(lines, first):
        record = _summaryIn(line)
        if record is not None:
            yield ShardSummary(record, f"{source} line {number}")


MODES = ("stream", "open", "closed")
"""The modes a summary can be of."""

LARGEST = 2**63 - 1
"""The largest count a summary can hold."""

HIGHEST = 1e15
"""The highest number (a time, rate or threshold) a summary can hold."""


class _Bad(ValueError):
    """
    A field of a summary that cannot be read; the message names it.
    """


def _show(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _whole(value: object, key: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= LARGEST:
        raise _Bad(f"{key} is not a whole number from {minimum}: {_show(value)}")
    return value


def _number(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(f"{key} is not a number: {_show(value)}")
    if not 0 <= value <= HIGHEST:
        raise _Bad(f"{key} is not a number from 0 to {HIGHEST:g}: {_show(value)}")
    return float(value)


def _optional(value: object, key: str, read: Any) -> Any:
    return None if value is None else read(value, key)


def _text(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise _Bad(f"{key} is not a string: {_show(value)}")
    return value


def _object(value: object, key: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(f"{key} is not an object: {_show(value)}")
    return value


def _list(value: object, key: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Bad(f"{key} is not a list: {_show(value)}")
    return value


def _oneLine(text: str) -> str:
    """
    C{text}, with any character that is not printable (a line break...)
    escaped as JSON escapes it: what a summary says stays on one line.
    """
    return text if text.isprintable() else json.dumps(text, ensure_ascii=False)[1:-1]


_TEXTS = ("run_id", "error", "run_description", "description")
"""A summary's strings that are shown in a line of their own or in one."""


def _checkRecord(summary: ShardSummary) -> ShardSummary:
    for key, kind in _REQUIRED.items():
        value = summary.record.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise MergeError(f"{summary.where}: not a shard summary ({key!r} is missing or wrong)")
    record = summary.record
    try:
        _whole(record["shards"], "shards", 1)
        _whole(record["status"], "status")
        if record["status"] > 255:
            raise _Bad(f"status is not an exit status: {record['status']}")
        if record["mode"] not in MODES:
            raise _Bad(f"mode is not one of {', '.join(MODES)}: {_show(record['mode'])}")
    except _Bad as e:
        raise MergeError(f"{summary.where}: cannot read its summary: {e}") from None
    texts = {k: _oneLine(record[k]) for k in _TEXTS if isinstance(record.get(k), str)}
    return ShardSummary({**record, **texts}, summary.where)


_LISTED = 10
"""The most missing shards an error line lists."""


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
    summaries = [_checkRecord(summary) for summary in summaries]
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
    if len(seen) < count and not partial:
        missing = []
        for i in range(count):
            if i not in seen:
                missing.append(i)
                if len(missing) == _LISTED:
                    break
        left = count - len(seen) - len(missing)
        if count - len(seen) == 1:
            raise MergeError(f"shard {missing[0]} of {count} is missing (run_id {runId})")
        more = f" and {left:,} more" if left else ""
        raise MergeError(f"shards {_listed(missing)}{more} of {count} are missing (run_id {runId})")
    return [seen[i] for i in sorted(seen)]


def _bytes(value: object, key: str) -> bytes:
    try:
        return bytes.fromhex(_text(value, key))
    except ValueError:
        raise _Bad(f"{key} is not hexadecimal: {_show(value)}") from None


def _mismatch(data: object, offset: int) -> Mismatch:
    data = _object(data, "a mismatch")
    mismatch = Mismatch(
        connection=_whole(data.get("connection"), "a mismatch's connection") + offset,
        message=_whole(data.get("message"), "a mismatch's message"),
        offset=_whole(data.get("offset"), "a mismatch's offset"),
        messageOffset=_whole(data.get("message_offset"), "a mismatch's message_offset"),
        expected=_bytes(data.get("expected_hex"), "a mismatch's expected_hex"),
        received=_bytes(data.get("received_hex"), "a mismatch's received_hex"),
        excerptStart=_whole(data.get("excerpt_start"), "a mismatch's excerpt_start"),
    )
    if mismatch.excerptStart > mismatch.messageOffset:
        raise _Bad("a mismatch's excerpt_start is past its message_offset")
    return mismatch


_DATAGRAM_COUNTS = [f.name for f in fields(DatagramCounts)]


def _datagrams(value: object) -> dict[str, int]:
    counts = {}
    for key, count in _object(value, "datagrams").items():
        if key not in _DATAGRAM_COUNTS:
            raise _Bad(f"datagrams has a count this version does not know: {_show(key)}")
        counts[key] = _whole(count, f"datagrams.{key}")
    return counts


def _histogram(value: object) -> Latencies | None:
    if not value:
        return None
    try:
        return Latencies.decode(_text(value, "histogram"))
    except _Bad:
        raise
    except Exception as e:  # whatever the hdrhistogram package raises
        raise _Bad(f"histogram cannot be decoded: {e}") from None


def _interrupted(record: Mapping[str, Any]) -> int | None:
    status = record["status"]
    error = record.get("error") or ""
    if status > 128 and error.startswith("interrupted by "):
        try:
            return int(signal.Signals(status - 128))
        except ValueError:
            return None
    return None


def runThresholds(
    summary: ShardSummary, given: Mapping[str, float] | None = None
) -> dict[str, float]:
    """
    The thresholds to check on the run whose first summary is C{summary}:
    those it was asked for (its C{run_thresholds}), each replaced by the
    one C{given} for it, if any (C{merge --max-p99 ...}; 0 turns a limit
    off, except C{max-loss}, where 0 is a limit: no loss).

    @raise MergeError: when C{run_thresholds} cannot be read.
    """
    asked: dict[str, float] = {}
    try:
        recorded = summary.record.get("run_thresholds")
        for option, value in _object(recorded or {}, "run_thresholds").items():
            if option not in THRESHOLDS:
                raise _Bad(
                    f"run_thresholds has a threshold this version does not know: {_show(option)}"
                )
            asked[option] = _number(value, f"run_thresholds.{option}")
    except _Bad as e:
        raise MergeError(f"{summary.where}: cannot read its summary: {e}") from None
    asked.update(given or {})
    return {option: value for option, value in asked.items() if value or option == "max-loss"}


_COUNTS = (
    "sent",
    "verified",
    "failed",
    "lost",
    "not_sent",
    "stream_bytes",
    "measured",
    "measured_bytes",
    "mismatch_count",
)


def _positive(value: object, key: str) -> int:
    return _whole(value, key, 1)


def mergeShards(
    shards: Sequence[ShardSummary], thresholds: Mapping[str, float] | None = None
) -> RunResult:
    """
    The result of the whole run whose shards (as L{checkShards} gives
    them) are C{shards}.  Connections are numbered through the run: shard
    1's first connection comes after shard 0's last.

    @param thresholds: thresholds given in place of the run's (by option,
        C{max-p99}...): see L{runThresholds}.
    @raise MergeError: for a summary one of whose fields cannot be read,
        naming where it is.
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
    asked = runThresholds(shards[0], thresholds)
    for summary in shards:
        record = summary.record
        try:
            for key in _COUNTS:
                totals[key] += _whole(record[key], key)
            for kind, count in _object(record["errors"], "errors").items():
                errors[_oneLine(kind)] += _whole(count, f"errors.{_oneLine(kind)}")
            if record.get("datagrams") is not None:
                datagrams = datagrams if datagrams is not None else Counter()
                datagrams.update(_datagrams(record["datagrams"]))
            histogram = _histogram(record.get("histogram"))
            if histogram is not None:
                latencies.add(histogram)
            for data in _list(record["mismatches"], "mismatches"):
                if len(mismatches) < KEPT_MISMATCHES:
                    mismatches.append(_mismatch(data, offset))
            for data in _list(record.get("ended_early") or [], "ended_early"):
                if len(ends) < KEPT_ENDS:
                    data = _object(data, "an early end")
                    ends.append(
                        EarlyEnd(
                            _whole(data.get("connection"), "an early end's connection") + offset,
                            _oneLine(_text(data.get("kind"), "an early end's kind")),
                            _whole(data.get("received_bytes"), "an early end's received_bytes"),
                            _whole(data.get("owed_bytes"), "an early end's owed_bytes"),
                        )
                    )
            spansByKind = _object(
                record.get("received_bytes_by_error") or {}, "received_bytes_by_error"
            )
            for kind, span in spansByKind.items():
                kind = _oneLine(kind)
                span = _object(span, f"received_bytes_by_error.{kind}")
                least = _whole(span.get("min"), f"received_bytes_by_error.{kind}.min")
                most = _whole(span.get("max"), f"received_bytes_by_error.{kind}.max")
                if kind in endBytes:
                    least = min(least, endBytes[kind][0])
                    most = max(most, endBytes[kind][1])
                endBytes[kind] = (least, most)
            for data in _list(record["tcp_connections"], "tcp_connections"):
                data = _object(data, "a tcp_connections entry")
                info = TCPInfo(
                    _whole(data.get("retransmits"), "tcp_connections' retransmits"),
                    _whole(data.get("total_retrans"), "tcp_connections' total_retrans"),
                    _number(data.get("rtt_ms"), "tcp_connections' rtt_ms"),
                    _number(data.get("rttvar_ms"), "tcp_connections' rttvar_ms"),
                )
                infos.append(info)
                tcpPerConnection[
                    _whole(data.get("connection"), "tcp_connections' connection") + offset
                ] = info
            share = _object(record["share"], "share")
            offset += _optional(share.get("connections"), "share.connections", _whole) or 0
            rate += _optional(share.get("rate"), "share.rate", _number) or 0.0
            _optional(share.get("count"), "share.count", _whole)
            _optional(record.get("size"), "size", _positive)
            _optional(record.get("error"), "error", _text)
            _optional(record.get("run_description"), "run_description", _text)
            _optional(record.get("description"), "description", _text)
            started = _number(record["started_at"], "started_at")
            ended = _number(record["ended_at"], "ended_at")
        except _Bad as e:
            raise MergeError(f"{summary.where}: cannot read its summary: {e}") from None
        if record["measured"] or record["stream_bytes"]:
            spans.append((started, ended))
    startedAt = min((a for a, _ in spans), default=float(first["started_at"]))
    endedAt = max((b for _, b in spans), default=startedAt)
    seconds = endedAt - startedAt if spans else 0.0
    messagesPerSecond: float | None = None
    megabytesPerSecond: float | None = None
    if measurableSpan(seconds, rate):
        messagesPerSecond = totals["measured"] / seconds
        megabytesPerSecond = totals["measured_bytes"] / seconds / 1e6
    values: dict[str, Any] = {name: asked.get(option, 0.0) for option, name in THRESHOLDS.items()}
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
    C{share} the whole (connections, rate and count of every shard).  The
    shards are those L{mergeShards} merged, which read them.
    """
    first = shards[0].record
    shares = [s.record["share"] for s in shards]
    rate = sum(round(float(s.get("rate") or 0) * RATE_UNITS) for s in shares) / RATE_UNITS
    count = sum(int(s.get("count") or 0) for s in shares)
    if first["mode"] == "stream":
        count = int(shares[0].get("count") or 0)  # per connection: not split
    asked = runThresholds(shards[0], thresholds)
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
