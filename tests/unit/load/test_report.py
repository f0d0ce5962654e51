"""
What a load run reports: the progress line, the text summary, the JSON lines
and their schema, TCP_INFO, and the same counts under the same names in the
summary, the JSON lines and the metrics.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import socket
import struct
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from tests.unit.load.test_run import FakeConnect
from uppercase.client._settings import ClientSettings
from uppercase.load.histogram import Latencies
from uppercase.load.metrics import LoadCollector
from uppercase.load.prober import LogLoadReport
from uppercase.load.report import (
    JSONLoadReport,
    TextLoadReport,
    describeSettings,
    duration,
    progressLine,
    summaryLines,
    summaryRecord,
)
from uppercase.load.result import Check, RunObserver, RunResult, Snapshot, failureReason
from uppercase.load.run import LoadRun
from uppercase.net.tcpinfo import TCPInfo, readTCPInfo, summarize

# The JSON lines schema (docs/load-testing.md): each object's keys and the
# types their values take.
NUMBER = (int, float)
OPTIONAL_NUMBER = (int, float, type(None))
LATENCY = (dict, type(None))
START_SCHEMA = {
    "type": str,
    "schema": int,
    "time": NUMBER,
    "mode": str,
    "description": str,
    "connect": str,
    "connections": int,
    "pipeline": int,
    "rate": OPTIONAL_NUMBER,
    "size": int,
    "payload": str,
    "seed": int,
    "duration_s": OPTIONAL_NUMBER,
    "warmup_s": NUMBER,
    "count": (int, type(None)),
    "send_proxy": (str, type(None)),
}
INTERVAL_SCHEMA = {
    "type": str,
    "elapsed_s": NUMBER,
    "phase": str,
    "connections": int,
    "sent": int,
    "verified": int,
    "failed": int,
    "errors": dict,
    "messages_per_s": NUMBER,
    "mb_per_s": NUMBER,
    "latency_ms": LATENCY,
    "backlog": int,
}
SUMMARY_SCHEMA = {
    "type": str,
    "mode": str,
    "description": str,
    "sent": int,
    "verified": int,
    "failed": int,
    "lost": int,
    "not_sent": int,
    "stream_bytes": int,
    "measured": int,
    "seconds": NUMBER,
    "messages_per_s": NUMBER,
    "mb_per_s": NUMBER,
    "latency_ms": LATENCY,
    "latency_distribution_ms": (list, type(None)),
    "histogram": (str, type(None)),
    "errors": dict,
    "mismatch_count": int,
    "mismatches": list,
    "tcp": (dict, type(None)),
    "tcp_connections": list,
    "thresholds": list,
    "datagrams": (dict, type(None)),
    "ok": bool,
    "error": (str, type(None)),
    "status": int,
    "schema": int,
    "run_id": str,
    "run_description": str,
    "run_thresholds": dict,
    "shard": int,
    "shards": int,
    "size": int,
    "share": dict,
    "measured_bytes": int,
    "started_at": NUMBER,
    "ended_at": NUMBER,
    "ended_early": list,
    "received_bytes_by_error": dict,
}
LATENCY_KEYS = {"p50", "p90", "p99", "p99.9", "max"}


def snapshot(**changes: Any) -> Snapshot:
    fields: dict[str, Any] = dict(
        elapsed=3.0,
        phase="measuring",
        connections=100,
        sent=1000,
        verified=990,
        failed=0,
        errors=0,
        errorsByKind={},
        messagesPerSecond=123456.0,
        megabytesPerSecond=7.9,
        latency={"p50": 0.5, "p90": 0.8, "p99": 1.2, "p99.9": 3.1, "max": 12.0},
    )
    fields.update(changes)
    return Snapshot(**fields)


class ProgressTests(SynchronousTestCase):
    """
    A progress line each second, live on a terminal, plain lines otherwise.
    """

    def test_line(self) -> None:
        """
        The line gives the time, phase, connections, rates, p50 and p99,
        and the errors.
        """
        self.assertEqual(
            progressLine(snapshot()),
            "[   3s]  measuring   100 conns  123,456 msg/s  7.90 MB/s  "
            "p50 0.500 p99 1.200 ms  0 errors",
        )

    def test_plainLines(self) -> None:
        """
        Not on a terminal, each second is a line of its own.
        """
        err = io.StringIO()
        report = TextLoadReport(io.BytesIO(), err, live=False)
        report.interval(snapshot())
        report.interval(snapshot(elapsed=4.0))
        lines = err.getvalue().split("\n")
        self.assertEqual(len(lines), 3)
        self.assertTrue(lines[1].startswith("[   4s]"))
        self.assertNotIn("\r", err.getvalue())

    def test_liveLine(self) -> None:
        """
        On a terminal the line is rewritten in place (carriage return,
        erase to the end), and ended before the summary.
        """
        err = io.StringIO()
        report = TextLoadReport(io.BytesIO(), err, live=True)
        report.interval(snapshot())
        report.interval(snapshot(elapsed=4.0))
        self.assertEqual(err.getvalue().count("\r"), 2)
        self.assertEqual(err.getvalue().count("\x1b[K"), 2)
        self.assertNotIn("\n", err.getvalue())


class RunReportCase(SynchronousTestCase):
    """
    A small run of C{count} messages at 10/s, each answered 20 ms after it
    is due, reported by a report the test picks.
    """

    def runWith(self, report: Any, count: int = 5, **changes: Any) -> LoadRun:
        settings = ClientSettings(rate=10, count=count, **changes)
        clock = Clock()
        clock.advance(1000)
        connect = FakeConnect()
        run = LoadRun(settings, clock, connect, report)
        run.start()
        transport = connect.succeed()
        for _ in range(20):
            clock.advance(0.02)
            connect.answer(transport)
            clock.advance(0.08)
        clock.advance(0)
        self.assertTrue(run.done.called)
        return run


class TextSummaryTests(RunReportCase):
    """
    The text summary says what was measured and how.
    """

    def test_summary(self) -> None:
        """
        The summary names the run, the counts, the latency percentiles with
        their basis (open loop, from the scheduled time), the errors, and
        what TCP saw (n/a in memory).
        """
        out = io.BytesIO()
        self.runWith(TextLoadReport(out, io.StringIO(), live=False))
        lines = out.getvalue().decode().splitlines()
        self.assertEqual(
            lines[0],
            "open loop at 10 messages/s: 1 connection, no pipeline limit, "
            "64-byte random messages, 5 messages",
        )
        self.assertTrue(lines[1].startswith("5 sent, 5 verified, 0 failed, 0 lost; measured 5"))
        match = re.match(
            r"^latency ms \(open loop, from each message's scheduled time\): "
            r"p50 (\S+)  p90 (\S+)  p99 (\S+)  p99\.9 (\S+)  max (\S+)$",
            lines[2],
        )
        assert match is not None, lines[2]
        for figure in match.groups():
            self.assertApproximates(float(figure), 20.0, 0.05)
        self.assertEqual(
            lines[3:], ["errors: none", "tcp: n/a (no TCP_INFO for these connections)"]
        )


class JSONTests(RunReportCase):
    """
    C{--json}: a C{start} object, one C{interval} per second, a
    C{summary}, each following the documented schema.
    """

    def assertSchema(self, record: dict[str, Any], schema: dict[str, Any]) -> None:
        self.assertEqual(set(record), set(schema))
        for key, types in schema.items():
            self.assertIsInstance(record[key], types, key)

    def test_schema(self) -> None:
        """
        Every line is one JSON object; the first is C{start}, the last
        C{summary}, those between C{interval}s; each has exactly the
        documented keys, with values of the documented types.
        """
        out = io.BytesIO()
        self.runWith(JSONLoadReport(out, io.StringIO(), live=False), count=15, maxP99=100.0)
        records = [json.loads(line) for line in out.getvalue().decode().splitlines()]
        kinds = [record["type"] for record in records]
        self.assertEqual(kinds[0], "start")
        self.assertEqual(kinds[-1], "summary")
        self.assertEqual(set(kinds[1:-1]), {"interval"})
        self.assertSchema(records[0], START_SCHEMA)
        for record in records[1:-1]:
            self.assertSchema(record, INTERVAL_SCHEMA)
        summary = records[-1]
        self.assertSchema(summary, SUMMARY_SCHEMA)
        self.assertEqual(set(summary["latency_ms"]), LATENCY_KEYS)
        self.assertEqual(
            summary["thresholds"],
            [
                {
                    "option": "max-p99",
                    "limit": 100.0,
                    "value": summary["latency_ms"]["p99"],
                    "ok": True,
                }
            ],
        )
        self.assertEqual((summary["ok"], summary["error"], summary["status"]), (True, None, 0))
        self.assertEqual(records[0]["schema"], 1)
        self.assertEqual(summary["schema"], 1)
        self.assertEqual(Latencies.decode(summary["histogram"]).count, 15)
        # A run of its own is the one shard of a run of one.
        self.assertEqual((summary["shard"], summary["shards"]), (0, 1))
        self.assertEqual(summary["share"], {"connections": 1, "rate": 10, "count": 15})
        self.assertEqual(summary["run_thresholds"], {"max-p99": 100.0})
        self.assertEqual(summary["measured_bytes"], 15 * 64)
        self.assertLessEqual(summary["started_at"], summary["ended_at"])

    def test_mismatchInJSON(self) -> None:
        """
        A wrong reply appears in the summary with its connection, message,
        offsets and hex excerpts, and the summary says why it failed.
        """
        out = io.BytesIO()
        settings = ClientSettings(count=1, payload="text")
        connect = FakeConnect()
        clock = Clock()
        run = LoadRun(settings, clock, connect, JSONLoadReport(out, io.StringIO(), live=False))
        run.start()
        connect.answer(connect.succeed(), wrong=True)
        clock.advance(0)
        summary = json.loads(out.getvalue().decode().splitlines()[-1])
        self.assertEqual(
            summary["mismatches"],
            [
                {
                    "connection": 1,
                    "message": 1,
                    "offset": 0,
                    "message_offset": 0,
                    "excerpt_start": 0,
                    "expected_hex": b"HELLO\nHELLO\nHELLO\n"[:16].hex(),
                    "received_hex": b"hello\nhello\nhello\n"[:16].hex(),
                }
            ],
        )
        self.assertEqual((summary["ok"], summary["status"]), (False, 1))
        self.assertTrue(summary["error"].startswith("1 wrong reply; first: connection 1"))


class TCPInfoTests(SynchronousTestCase):
    """
    TCP_INFO from a real socket's layout, or n/a.
    """

    def test_unpack(self) -> None:
        """
        The fields are read where Linux's struct tcp_info has them: the
        current retransmits third, rtt and rttvar (us) and total_retrans.
        """
        fields = [0] * 32
        fields[2] = 3
        fields[8 + 15] = 1500
        fields[8 + 16] = 250
        fields[8 + 23] = 42
        raw = struct.pack("=8B24I", *fields) + b"\0" * 128
        self.assertEqual(TCPInfo.unpack(raw), TCPInfo(3, 42, 1.5, 0.25))

    def test_notASocket(self) -> None:
        """
        A transport without a TCP socket (in memory, UNIX) gives n/a.
        """

        class NoHandle:
            pass

        self.assertIsNone(readTCPInfo(NoHandle()))
        unix = socket.socket(socket.AF_UNIX)
        self.addCleanup(unix.close)

        class UnixTransport:
            def getHandle(self) -> socket.socket:
                return unix

        self.assertIsNone(readTCPInfo(UnixTransport()))

    def test_summarize(self) -> None:
        """
        Over the connections: the count, retransmissions in all, the median
        and largest RTT; none known, None.
        """
        infos = [TCPInfo(0, 1, 0.1, 0.01), None, TCPInfo(0, 2, 0.3, 0.02), TCPInfo(0, 0, 0.2, 0)]
        self.assertEqual(
            summarize(infos),
            {
                "connections": 3,
                "retransmits": 3,
                "rtt_ms_median": 0.2,
                "rtt_ms_max": 0.3,
                "rttvar_ms_max": 0.02,
            },
        )
        self.assertIsNone(summarize([None]))


class VocabularyTests(SynchronousTestCase):
    """
    The summary, C{--json} and the metrics give the same counts under the
    same names.
    """

    def test_sameCountsEverywhere(self) -> None:
        """
        A prober at 10 messages/s, 2 s of warm-up: 1 s up (10 verified),
        its connection reset with 1 message in flight, then 1.4 s with no
        connection (14 not sent, neither lost nor failed).  The bytes verified are those of every verified message,
        warm-up included, as the messages verified are.
        """
        settings = ClientSettings(rate=10, count=0, warmup=2)
        clock = Clock()
        connect = FakeConnect()
        run = LoadRun(settings, clock, connect, Collect(), reconnect=True)
        run.start()
        transport = connect.succeed()
        for _ in range(10):
            clock.advance(0.05)
            connect.answer(transport)
            clock.advance(0.05)
        transport.reset()  # the 11th is in flight
        clock.advance(1.4)  # before the first retry (1.5 s at the earliest)
        run.stop()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(LoadCollector(run))
        text = generate_latest(registry).decode()
        result = self.successResultOf(run.done)
        record = summaryRecord(result)
        line = summaryLines(result)[1]
        counts = {"sent": 11, "verified": 10, "failed": 0, "lost": 1, "not_sent": 14}
        for name, value in counts.items():
            self.assertEqual(record[name], value, name)
            self.assertIn(f"uppercase_client_messages_{name}_total {value:.1f}", text)
        self.assertTrue(
            line.startswith("11 sent, 10 verified, 0 failed, 1 lost, 14 not sent;"), line
        )
        self.assertIn(f"uppercase_client_bytes_verified_total {10 * 64:.1f}", text)
        self.assertEqual(record["errors"], {"reset": 1})


class Collect(RunObserver):
    """
    Reports nothing.
    """


class WordingTests(RunReportCase):
    """
    Every count the load run prints is singular for one and has thousands
    separators, as the summary's first counts already had; numbers that
    were options are written as a person writes them.
    """

    def test_duration(self) -> None:
        """
        A span under a tenth of a second is said in milliseconds (C{0.00 s}
        said nothing), a longer one in seconds.
        """
        self.assertEqual(
            [duration(s) for s in (0.0005, 0.0013, 0.0999, 0.1, 2.0, 1234.5)],
            ["0.5 ms", "1.3 ms", "99.9 ms", "0.10 s", "2.00 s", "1,234.50 s"],
        )

    def result(self, **changes: Any) -> RunResult:
        out = io.BytesIO()
        run = self.runWith(TextLoadReport(out, io.StringIO(), live=False))
        return dataclasses.replace(self.successResultOf(run.done), **changes)

    def test_progressLine(self) -> None:
        """
        One connection and one error: C{1 conn}, C{1 error}; many errors
        with separators.
        """
        line = progressLine(snapshot(connections=1, errors=1))
        self.assertIn("  1 conn  ", line)
        self.assertTrue(line.endswith("  1 error"), line)
        self.assertTrue(progressLine(snapshot(errors=1200)).endswith("  1,200 errors"))

    def test_describeSettings(self) -> None:
        """
        C{1 message}, C{1,000 messages}, C{1 byte per connection}, and a
        rate or duration with separators, never an exponent.
        """
        self.assertTrue(
            describeSettings(ClientSettings(count=1, pipeline=1)).endswith(", 1 message")
        )
        self.assertTrue(
            describeSettings(ClientSettings(count=1000, pipeline=1)).endswith(", 1,000 messages")
        )
        self.assertTrue(
            describeSettings(ClientSettings(stream=True, count=1, size=1)).endswith(
                ", 1 byte per connection"
            )
        )
        self.assertTrue(
            describeSettings(ClientSettings(rate=1e6, duration=1e4)).startswith(
                "open loop at 1,000,000 messages/s: 1 connection"
            )
        )
        self.assertIn("for 10,000 s", describeSettings(ClientSettings(rate=1e6, duration=1e4)))

    def test_summaryLines(self) -> None:
        """
        C{1 byte verified}, C{tcp (kernel, 1 connection): 1 retransmitted
        segment}; C{2 connections} and C{1,200 retransmitted segments}.
        """
        tcp = {"connections": 1, "retransmits": 1, "rtt_ms_median": 0.5, "rtt_ms_max": 1.0}
        lines = summaryLines(self.result(mode="stream", streamBytes=1, tcp=tcp))
        self.assertTrue(lines[1].startswith("1 byte verified in "), lines[1])
        self.assertIn("tcp (kernel, 1 connection): 1 retransmitted segment; ", lines[-1])
        many = dict(tcp, connections=2, retransmits=1200)
        lines = summaryLines(self.result(tcp=many))
        self.assertIn("tcp (kernel, 2 connections): 1,200 retransmitted segments; ", lines[-1])

    def test_thresholds(self) -> None:
        """
        A threshold kept says C{at least} or C{at most}; the value has the
        report's format (messages/s whole, MB/s with two decimals, ms with
        three), and the limit is written plainly.
        """
        for check, text in [
            (
                Check("min-rate", "verified rate", 100, 18370.639, "messages/s", False),
                "verified rate 18,371 messages/s is at least --min-rate 100",
            ),
            (
                Check("min-rate", "verified rate", 1e8, 149785.872, "messages/s", False),
                "verified rate 149,786 messages/s is under --min-rate 100,000,000",
            ),
            (
                Check("min-mbps", "verified throughput", 0.5, 1234.5678, "MB/s", False),
                "verified throughput 1,234.57 MB/s is at least --min-mbps 0.5",
            ),
            (
                Check("max-p99", "p99 latency", 5, 1.2041, "ms", True),
                "p99 latency 1.204 ms is at most --max-p99 5",
            ),
            (
                Check("max-p99", "p99 latency", 1, 1.2041, "ms", True),
                "p99 latency 1.204 ms is over --max-p99 1",
            ),
            (
                Check("min-rate", "verified rate", 1e8, None, "messages/s", False),
                "no verified rate was measured (--min-rate 100,000,000)",
            ),
        ]:
            self.assertEqual(str(check), text)

    def test_failureReasons(self) -> None:
        """
        The one line of a failed run: C{1 of 2 messages unanswered}, counts
        with separators.
        """
        settings = ClientSettings(count=1, pipeline=1)
        fields: dict[str, Any] = dict(
            verified=0, streamBytes=0, mismatchCount=0, errors={}, checks=[], sent=1
        )
        self.assertEqual(failureReason(fields, settings, None), "no message was verified")
        fields.update(verified=1, sent=2)
        self.assertEqual(failureReason(fields, settings, None), "1 of 2 messages unanswered")
        fields.update(verified=1, sent=2000)
        self.assertEqual(
            failureReason(fields, settings, None), "1,999 of 2,000 messages unanswered"
        )
        fields.update(errors={"reset": 1200})
        self.assertEqual(failureReason(fields, settings, None), "errors: 1,200 reset")

    def test_loadRunOverLogged(self) -> None:
        """
        The prober's last log line gives its counts with separators.
        """
        result = self.result(verified=1000, failed=1200)
        with capturedLogs() as events:
            LogLoadReport().finished(result)
        last = formatEvent(events[-1])
        self.assertTrue(last.startswith("Load run over: 1,000 verified, 1,200 failed, "), last)
