"""
Tests for L{uppercase.load.merge}: shard summaries found among other lines,
checked to be one run's, each once, and merged exactly.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from uppercase.client._ending import EarlyEnd
from uppercase.client._settings import ClientSettings
from uppercase.client._verifier import Mismatch
from uppercase.load.histogram import Latencies
from uppercase.load.merge import MergeError, checkShards, findSummaries, mergeShards, wholeRun
from uppercase.load.report import summaryRecord
from uppercase.load.result import RunResult, checkThresholds
from uppercase.load.shard import splitRun

WHOLE = ClientSettings(connections=6, rate=300.0, count=0, duration=2.0, maxP99=50.0)
"""The run the shards below are of."""


def shardLine(
    index: int,
    count: int,
    micros: Sequence[int],
    whole: ClientSettings = WHOLE,
    start: float = 1000.0,
    seconds: float = 2.0,
    **changes: Any,
) -> str:
    """
    Shard C{index} of C{count}'s summary line, as C{--json} prints it, for
    a shard that verified one message per latency in C{micros}.
    """
    mine, shard = splitRun(whole, index, count)
    latencies = Latencies()
    for value in micros:
        latencies.recordMicros(value)
    fields: dict[str, Any] = dict(
        description="",
        mode=mine.mode,
        connections=mine.connections,
        sent=len(micros),
        verified=len(micros),
        failed=0,
        lost=0,
        streamBytes=0,
        measured=len(micros),
        seconds=seconds,
        messagesPerSecond=None,
        megabytesPerSecond=None,
        latency=latencies.summary(),
        errors={},
        mismatches=[],
        mismatchCount=0,
        tcp=None,
        tcpPerConnection={},
        checks=[],
        failure=None,
        interrupted=None,
        status=0,
        histogram=latencies.encode() if micros else "",
        startedAt=start,
        endedAt=start + seconds,
        measuredBytes=64 * len(micros),
    )
    fields.update(changes)
    return json.dumps(summaryRecord(RunResult(**fields), shard.asJSON(mine)))


def merged(lines: Sequence[str], **kwargs: Any) -> RunResult:
    found = list(findSummaries(lines, "input"))
    return mergeShards(checkShards(found, **kwargs))


class ExactMergeTests(SynchronousTestCase):
    """
    The merge adds histograms and counts: it is the run as one process
    would have measured it.
    """

    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(st.lists(st.integers(1, 10**7), min_size=0, max_size=200), min_size=1, max_size=6)
    )
    def test_histogramsAdd(self, shards: list[list[int]]) -> None:
        """
        The shards' histograms merged equal one histogram of all their
        values: the same count, percentiles and maximum; the counts add.
        """
        count = len(shards)
        whole = ClientSettings(connections=count, duration=1.0)
        lines = [shardLine(i, count, values, whole) for i, values in enumerate(shards)]
        result = merged(lines)
        pooled = Latencies()
        for values in shards:
            for value in values:
                pooled.recordMicros(value)
        self.assertEqual(result.latency, pooled.summary())
        self.assertEqual(result.verified, sum(map(len, shards)))
        self.assertEqual(result.measured, sum(map(len, shards)))
        if pooled.count:
            self.assertEqual(Latencies.decode(result.histogram).buckets(), pooled.buckets())

    def test_wholeRun(self) -> None:
        """
        The merged result describes the whole run: its connections, its
        span from the first start to the last end, its rate over that
        span, the thresholds the run was asked for, checked on the whole.
        """
        lines = [
            shardLine(0, 3, [1000] * 200, start=1000.0, seconds=2.0),
            shardLine(1, 3, [2000] * 200, start=1000.1, seconds=2.0),
            shardLine(2, 3, [90000] * 200, start=1000.0, seconds=1.9),
        ]
        result = merged(lines)
        self.assertEqual(result.connections, 6)
        self.assertEqual(result.description, splitRun(WHOLE)[1].description)
        self.assertAlmostEqual(result.seconds, 2.1)
        self.assertAlmostEqual(result.messagesPerSecond or 0, 600 / 2.1)
        self.assertAlmostEqual(result.megabytesPerSecond or 0, 600 * 64 / 2.1 / 1e6)
        # One shard in three at 90 ms: the whole run's p99 is over 50 ms.
        self.assertEqual(
            result.checks, checkThresholds(WHOLE, result.latency, result.messagesPerSecond, None)
        )
        self.assertEqual(result.reason, str(result.checks[0]))
        self.assertEqual(result.status, 1)
        shards = checkShards(list(findSummaries(lines, "x")))
        self.assertEqual(mergeShards(shards, {}).status, 1)
        self.assertEqual(mergeShards(shards, {"max-p99": 0.0}).status, 0)  # off

    def test_thresholdGivenReplacesOnlyItsOwn(self) -> None:
        """
        A threshold given to the merge replaces the run's own of that name
        only: the run's C{--max-p99 50} is still checked alongside a
        C{--min-rate} given, and said in the merged summary.
        """
        lines = [shardLine(i, 3, [90000] * 200) for i in range(3)]
        shards = checkShards(list(findSummaries(lines, "x")))
        result = mergeShards(shards, {"min-rate": 1.0})
        self.assertEqual([c.option for c in result.checks], ["max-p99", "min-rate"])
        self.assertEqual(result.status, 1)
        self.assertEqual(
            wholeRun(shards, {"min-rate": 1.0})["run_thresholds"],
            {"max-p99": 50.0, "min-rate": 1.0},
        )

    def test_failuresAdd(self) -> None:
        """
        Errors by kind add up; a wrong reply in one shard fails the whole,
        named by its connection's number in the whole run.
        """
        wrong = Mismatch(2, 5, 300, 12, b"ab", b"aB", 11)
        lines = [
            shardLine(0, 2, [1000] * 10, errors={"reply timeout": 1}, lost=1, sent=11),
            shardLine(
                1,
                2,
                [1000] * 10,
                errors={"reply timeout": 2, "mismatch": 1},
                mismatches=[wrong],
                mismatchCount=1,
                failed=1,
                sent=12,
                lost=1,
            ),
        ]
        result = merged(lines)
        self.assertEqual(result.errors, {"reply timeout": 3, "mismatch": 1})
        self.assertEqual((result.sent, result.lost, result.failed), (23, 2, 1))
        self.assertEqual(result.mismatches, [Mismatch(5, 5, 300, 12, b"ab", b"aB", 11)])
        self.assertEqual(result.status, 1)
        self.assertTrue(result.reason and result.reason.startswith("1 wrong reply; first: "))

    def test_interrupted(self) -> None:
        """
        Shards interrupted by a signal make the merge interrupted by it,
        with its status, as a single run.
        """
        lines = [
            shardLine(i, 2, [1000], failure=None, interrupted=15, status=143) for i in range(2)
        ]
        result = merged(lines)
        self.assertEqual((result.status, result.reason), (143, "interrupted by SIGTERM"))

    def test_whole(self) -> None:
        """
        The merged summary names the run, not a shard: its share is the
        whole.
        """
        lines = [shardLine(i, 3, [1000]) for i in range(3)]
        shards = checkShards(list(findSummaries(lines, "x")))
        run = wholeRun(shards)
        self.assertIsNone(run["shard"])
        self.assertEqual(run["share"], {"connections": 6, "rate": 300.0, "count": None})
        self.assertEqual(run["run_thresholds"], {"max-p99": 50.0})


class DatagramMergeTests(SynchronousTestCase):
    """
    Shards of a UDP run: their datagram counts add, and C{--max-loss} is
    the whole run's, checked on the sum.
    """

    UDP = ClientSettings(
        connect="udp:127.0.0.1:9", connections=4, rate=200.0, count=0, duration=2.0, maxLoss=5.0
    )

    def counts(self, lost: int) -> dict[str, int]:
        return dict(
            sent=100, received=100 - lost, verified=100 - lost, corrupted=0, lost=lost,
            late=0, duplicated=0, reordered=0, foreign=0,
        )  # fmt: skip

    def test_countsAddAndLossIsWhole(self) -> None:
        """
        Each shard of several runs with no loss limit of its own (a shard
        that lost 8% of its datagrams does not fail by itself), and the merge
        sums the shards' datagram counts and checks C{--max-loss 5} on the
        whole: 8 lost of 200 is 4%, under it.
        """
        for index in range(2):
            mine, shard = splitRun(self.UDP, index, 2)
            self.assertEqual(mine.maxLoss, 100.0)
            self.assertEqual(shard.thresholds, {"max-loss": 5.0})
        lines = [
            shardLine(i, 2, [1000] * (100 - lost), whole=self.UDP, sent=100, lost=lost,
                      datagrams=self.counts(lost))
            for i, lost in enumerate((8, 0))
        ]  # fmt: skip
        result = merged(lines)
        assert result.datagrams is not None
        self.assertEqual((result.datagrams["sent"], result.datagrams["lost"]), (200, 8))
        [check] = result.checks
        self.assertEqual((check.option, check.value, check.ok), ("max-loss", 4.0, True))
        self.assertEqual(result.status, 0)

    def test_lossOverTheWholeLimitFails(self) -> None:
        """
        Losses that are over C{--max-loss} on the whole fail the merge, with
        the loss as its reason, though no shard checked it.
        """
        lines = [
            shardLine(i, 2, [1000] * 90, whole=self.UDP, sent=100, lost=10,
                      datagrams=self.counts(10))
            for i in range(2)
        ]  # fmt: skip
        result = merged(lines)
        self.assertEqual(result.status, 1)
        self.assertIn("loss", result.reason or "")
        self.assertIn("--max-loss 5", result.reason or "")

    def test_noLossGivenReplacesTheRuns(self) -> None:
        """
        C{--max-loss 0} given to the merge is a limit (no loss), not "not
        given": it replaces the run's C{--max-loss 5}, and 4% lost fails.
        """
        lines = [
            shardLine(i, 2, [1000] * (100 - lost), whole=self.UDP, sent=100, lost=lost,
                      datagrams=self.counts(lost))
            for i, lost in enumerate((8, 0))
        ]  # fmt: skip
        shards = checkShards(list(findSummaries(lines, "x")))
        self.assertEqual(mergeShards(shards).status, 0)
        result = mergeShards(shards, {"max-loss": 0.0})
        [check] = result.checks
        self.assertEqual((check.option, check.limit, check.ok), ("max-loss", 0.0, False))
        self.assertEqual(result.status, 1)


class EarlyEndMergeTests(SynchronousTestCase):
    """
    Connections that ended early, as the shards' summaries list them, are
    the merged run's: numbered through the run, with the byte spans of each
    kind joined.
    """

    def test_endsCarried(self) -> None:
        """
        Shard 1's connection 1 (after shard 0's three) is connection 4 of
        the run; the reset spans of 64,000 and 60,000-70,000 bytes join into
        60,000-70,000; the merged reason names the first early end.
        """
        lines = [
            shardLine(
                0, 2, [1000], errors={"reset": 1}, status=1,
                ends=[EarlyEnd(1, "reset", 64000, 4000)], endBytes={"reset": (64000, 64000)},
            ),
            shardLine(
                1, 2, [1000], errors={"reset": 2}, status=1,
                ends=[EarlyEnd(1, "reset", 60000, 100)], endBytes={"reset": (60000, 70000)},
            ),
        ]  # fmt: skip
        result = merged(lines)
        self.assertEqual(
            [(end.connection, end.received) for end in result.ends], [(1, 64000), (4, 60000)]
        )
        self.assertEqual(result.endBytes, {"reset": (60000, 70000)})
        self.assertEqual(result.errors, {"reset": 3})
        self.assertIn("connection 1: reset after 64,000 bytes received", result.reason or "")


class FindTests(SynchronousTestCase):
    """
    Summaries are found in any stream; nothing else counts.
    """

    def test_skipsOtherLines(self) -> None:
        """
        Progress lines, interval and start records, log lines, blank lines,
        garbage, a ping client's summary and bytes that are not UTF-8 are
        passed over; a summary behind C{kubectl logs --prefix} is found,
        and where each was found is named.
        """
        summary = shardLine(0, 1, [1000])
        lines: list[str | bytes] = [
            "starting in 3 s",
            "[   1s]  measuring   6 conns  300 msg/s  0.02 MB/s  0 errors",
            '{"type": "start", "schema": 1}',
            '{"type": "interval", "elapsed_s": 1}',
            "",
            "2026-12-06T18:30:00+0000 [uppercase.server#info] Connection from 10.0.0.3",
            '{"type": "summary", "sent": 2, "received": 2}',
            "{not json",
            b"\xff\xfe{",
            "[pod/load-0-abcde/client] " + summary,
            summary.encode(),
        ]
        found = list(findSummaries(lines, "standard input"))
        self.assertEqual(
            [f.where for f in found], ["standard input line 10", "standard input line 11"]
        )
        self.assertEqual(found[0].record, json.loads(summary))


class CheckTests(SynchronousTestCase):
    """
    Only the shards of one run, each once, all there, are merged; anything
    else is one line.
    """

    def assertRefused(self, lines: Sequence[str], message: str, **kwargs: Any) -> None:
        with self.assertRaises(MergeError) as caught:
            merged(lines, **kwargs)
        self.assertEqual(str(caught.exception), message)

    def test_missing(self) -> None:
        """
        A missing shard, or several, is named.
        """
        runId = json.loads(shardLine(0, 3, []))["run_id"]
        self.assertRefused(
            [shardLine(0, 3, []), shardLine(2, 3, [])], f"shard 1 of 3 is missing (run_id {runId})"
        )
        self.assertRefused([shardLine(0, 3, [])], f"shards 1, 2 of 3 are missing (run_id {runId})")

    def test_doubled(self) -> None:
        """
        A shard given twice is named, with both places.
        """
        lines = [shardLine(0, 2, []), shardLine(1, 2, []), shardLine(1, 2, [])]
        self.assertRefused(lines, "shard 1 of 2 is there twice: input line 2 and input line 3")

    def test_foreign(self) -> None:
        """
        A shard of another run (other settings) is named.
        """
        other = ClientSettings(connections=6, rate=301.0, duration=2.0)
        lines = [shardLine(0, 2, []), shardLine(1, 2, [], other)]
        first, second = (json.loads(line)["run_id"] for line in lines)
        self.assertRefused(
            lines,
            f"input line 2 is of another run (run_id {second}, not {first} as input line 1)",
        )

    def test_expectShards(self) -> None:
        """
        C{--expect-shards} must match the run's shard count.
        """
        lines = [shardLine(i, 2, []) for i in range(2)]
        runId = json.loads(lines[0])["run_id"]
        self.assertRefused(
            lines,
            f"--expect-shards 3, but the summaries are of a run of 2 shards (run_id {runId})",
            expect=3,
        )
        self.assertEqual(merged(lines, expect=2).status, 1)  # nothing verified

    def test_none(self) -> None:
        """
        No summary at all is one line.
        """
        with self.assertRaises(MergeError) as caught:
            checkShards([], sources="a.json, b.json")
        self.assertEqual(str(caught.exception), "no shard summary in a.json, b.json")

    def test_notASummary(self) -> None:
        """
        A summary record lacking a shard's keys is named, not a traceback.
        """
        record = json.loads(shardLine(0, 1, []))
        del record["shards"]
        self.assertRefused(
            [json.dumps(record)], "input line 1: not a shard summary ('shards' is missing or wrong)"
        )

    def test_unreadableHistogram(self) -> None:
        """
        A summary whose histogram cannot be decoded is named, not a
        traceback.
        """
        record = json.loads(shardLine(0, 1, [1000]))
        record["histogram"] = "not base64!"
        with self.assertRaises(MergeError) as caught:
            merged([json.dumps(record)])
        self.assertTrue(
            str(caught.exception).startswith("input line 1: cannot read its summary: "),
            caught.exception,
        )

    def test_partial(self) -> None:
        """
        With C{partial}, missing shards are left out (a run cut short).
        """
        found = list(findSummaries([shardLine(1, 3, [])], "x"))
        self.assertEqual([s.index for s in checkShards(found, partial=True)], [1])
