"""
Sharded load runs as real processes against one real server: the contract
of a Kubernetes Indexed Job (shard processes told their index by
C{JOB_COMPLETION_INDEX}, one C{--start-at}, their summaries merged from one
stream), and C{--workers 2} against one process.  Each run lasts about two
seconds; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

from twisted.trial.unittest import SynchronousTestCase

from uppercase.load.histogram import Latencies

from ._process import DEADLINE, Server, script

RATE = 600
"""Messages per second in all."""

DURATION = 2
"""Seconds each run sends for."""

LEAD = 4
"""Seconds ahead of now the shards' C{--start-at} is."""

GRACE = 10
"""The shards' C{--start-grace}: three interpreters on a busy machine may
come up after C{--start-at}, which the test is not about."""

DRAIN = 1.0
"""Seconds a shard may take after its duration for its last replies."""


def summaryOf(output: str) -> dict:
    """
    The summary record among C{output}'s JSON lines.
    """
    [summary] = [
        json.loads(line) for line in output.splitlines() if line.startswith('{"type": "summary"')
    ]
    return summary


class ShardsTests(SynchronousTestCase):
    """
    Shards of one run against one server, merged.
    """

    def setUp(self) -> None:
        self.server = Server("--quiet")
        self.addCleanup(self.server.stop)
        self.load = [
            "-c",
            f"tcp:127.0.0.1:{self.server.port}",
            "--rate",
            str(RATE),
            "--connections",
            "6",
            "--duration",
            str(DURATION),
        ]

    def test_indexedJob(self) -> None:
        """
        Three processes with C{JOB_COMPLETION_INDEX} 0, 1 and 2, C{--shard
        auto/3} and one C{--start-at}, as an Indexed Job runs them: merged
        from one stream (their output one after the other, as C{kubectl
        logs} gives it) they sent C{--rate} x duration messages in all
        (within 5%), every one verified, and the merged percentiles are
        those of the shards' latencies pooled in one histogram.  Each shard
        started at C{--start-at} or within its grace after it, never
        before, and sent for the duration; the merged span runs from the
        first start to the last end.
        """
        startAt = round(time.time() + LEAD, 3)
        shards = []
        for index in range(3):
            env = dict(os.environ, JOB_COMPLETION_INDEX=str(index))
            argv = self.load + ["--shard", "auto/3", "--start-at", f"{startAt:.3f}"]
            argv += ["--start-grace", str(GRACE), "--json"]
            shards.append(
                subprocess.Popen(
                    script("uppercase-client") + argv,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        outputs = []
        for shard in shards:
            output, _ = shard.communicate(timeout=DEADLINE)
            self.assertEqual(shard.returncode, 0, output)
            outputs.append(output)
        merge = subprocess.run(
            script("uppercase-client") + ["merge", "--expect-shards", "3", "--json", "-"],
            input="".join(outputs),
            capture_output=True,
            text=True,
            timeout=DEADLINE,
        )
        self.assertEqual((merge.returncode, merge.stderr), (0, ""))
        merged = json.loads(merge.stdout)
        self.assertLessEqual(abs(merged["sent"] - RATE * DURATION), RATE * DURATION * 0.05)
        self.assertEqual(merged["verified"], merged["sent"])
        self.assertEqual((merged["failed"], merged["lost"], merged["errors"]), (0, 0, {}))
        self.assertEqual(merged["share"]["connections"], 6)
        pooled = Latencies()
        for output in outputs:
            pooled.add(Latencies.decode(summaryOf(output)["histogram"]))
        self.assertEqual(merged["latency_ms"], pooled.summary())
        summaries = [summaryOf(output) for output in outputs]
        for summary in summaries:
            self.assertGreaterEqual(summary["started_at"], startAt)
            self.assertLessEqual(summary["started_at"], startAt + GRACE)
            length = summary["ended_at"] - summary["started_at"]
            self.assertGreaterEqual(length, DURATION - 0.1)  # the last send is 1/rate early
            self.assertLessEqual(length, DURATION + DRAIN)
        first = min(s["started_at"] for s in summaries)
        last = max(s["ended_at"] for s in summaries)
        self.assertEqual((merged["started_at"], merged["ended_at"]), (first, last))
        self.assertAlmostEqual(merged["seconds"], last - first, places=3)

    def test_workers(self) -> None:
        """
        C{--workers 2} sends the same totals as one process at the same
        C{--rate} (within 5%), every message verified, in one report.
        """
        one = subprocess.run(
            script("uppercase-client") + self.load + ["--json"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
        )
        two = subprocess.run(
            script("uppercase-client") + self.load + ["--workers", "2", "--json"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
        )
        self.assertEqual((one.returncode, two.returncode), (0, 0), two.stderr)
        single = summaryOf(one.stdout)
        merged = summaryOf(two.stdout)
        self.assertEqual(merged["shards"], 2)
        self.assertEqual(merged["verified"], merged["sent"])
        self.assertLessEqual(abs(merged["sent"] - single["sent"]), single["sent"] * 0.05)
        self.assertLessEqual(abs(merged["sent"] - RATE * DURATION), RATE * DURATION * 0.05)
        self.assertIn("2 shards", two.stderr)
