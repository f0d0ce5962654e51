"""
Tests for L{uppercase.load.shard}: shares that add up exactly, each shard's
seed, the run's identity, and C{--shard I/N} as typed.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from uppercase.client._settings import ClientSettings
from uppercase.load.shard import (
    INDEX_VARIABLE,
    RATE_UNITS,
    ShardError,
    parseShard,
    runIdentity,
    shardRate,
    shardSeed,
    share,
    splitRun,
)


class ShareTests(SynchronousTestCase):
    """
    Shares of a whole number and of a rate add up to the total and differ
    by one unit at most.
    """

    @settings(max_examples=300, deadline=None)
    @given(st.integers(0, 10**9), st.integers(1, 500))
    def test_wholeShares(self, total: int, count: int) -> None:
        """
        The shares of C{total} over C{count} shards add up to C{total} and
        differ by one at most, the larger ones first.
        """
        shares = [share(total, i, count) for i in range(count)]
        self.assertEqual(sum(shares), total)
        self.assertLessEqual(max(shares) - min(shares), 1)
        self.assertEqual(shares, sorted(shares, reverse=True))

    @settings(max_examples=300, deadline=None)
    @given(st.integers(1, 10**9).map(lambda m: m / RATE_UNITS), st.integers(1, 500))
    def test_rateShares(self, rate: float, count: int) -> None:
        """
        A rate (to the thousandth) is split in thousandths: the shares add
        up to it exactly, in thousandths, and differ by one thousandth at
        most.
        """
        shares = [round(shardRate(rate, i, count) * RATE_UNITS) for i in range(count)]
        self.assertEqual(sum(shares), round(rate * RATE_UNITS))
        self.assertLessEqual(max(shares) - min(shares), 1)

    def test_example(self) -> None:
        """
        1000 messages/s over 3 shards: 333.334, 333.333, 333.333.
        """
        self.assertEqual([shardRate(1000, i, 3) for i in range(3)], [333.334, 333.333, 333.333])
        self.assertEqual([share(10, i, 3) for i in range(3)], [4, 3, 3])


class SeedTests(SynchronousTestCase):
    """
    Each shard's payload seed comes from C{--seed} and its index, the same
    in every version.
    """

    def test_stable(self) -> None:
        """
        The derivation is the documented one: the first 8 bytes of
        SHA-256("uppercase shard SEED INDEX"), big-endian (pinned values,
        so that a change shows).
        """
        self.assertEqual(shardSeed(0, 0), 0xF0DE7905CF4EA31F)
        self.assertEqual(shardSeed(7, 2), 0xEF735333A6AE3823)

    @given(st.integers(0, 2**32), st.integers(0, 1000), st.integers(0, 1000))
    def test_distinct(self, seed: int, a: int, b: int) -> None:
        """
        Two shards of one run have different seeds.
        """
        if a != b:
            self.assertNotEqual(shardSeed(seed, a), shardSeed(seed, b))


class SplitRunTests(SynchronousTestCase):
    """
    L{splitRun} gives a shard its settings, or says in one line why it
    cannot.
    """

    def test_shares(self) -> None:
        """
        A shard has its share of the connections, the rate and the count,
        its own seed, and no thresholds (they are the whole run's, which
        its summary names).
        """
        whole = ClientSettings(connections=10, rate=1000.0, count=7, seed=3, maxP99=5.0)
        parts = [splitRun(whole, i, 3) for i in range(3)]
        self.assertEqual([p.connections for p, _ in parts], [4, 3, 3])
        self.assertEqual([p.count for p, _ in parts], [3, 2, 2])
        self.assertEqual([p.seed for p, _ in parts], [shardSeed(3, i) for i in range(3)])
        self.assertEqual({p.maxP99 for p, _ in parts}, {0.0})
        self.assertEqual({s.runId for _, s in parts}, {runIdentity(whole, 3, None)})
        self.assertEqual(parts[1][1].thresholds, {"max-p99": 5.0})
        self.assertEqual(
            parts[1][1].asJSON(parts[1][0])["share"],
            {
                "connections": 3,
                "rate": 333.333,
                "count": 2,
            },
        )

    def test_oneShardIsTheRun(self) -> None:
        """
        One shard of one is the run itself: its seed and thresholds too.
        """
        whole = ClientSettings(connections=2, seed=3, maxP99=5.0)
        self.assertIs(splitRun(whole)[0], whole)

    def test_streamCountIsPerConnection(self) -> None:
        """
        A stream's C{--count} is per connection: every shard keeps it.
        """
        whole = ClientSettings(connections=4, count=2, stream=True)
        self.assertEqual([splitRun(whole, i, 4)[0].count for i in range(4)], [2] * 4)

    def test_tooFewConnections(self) -> None:
        """
        Each shard needs one connection at least.
        """
        with self.assertRaises(ShardError) as caught:
            splitRun(ClientSettings(connections=2), 0, 3)
        self.assertEqual(
            str(caught.exception),
            "--shard 0/3 needs at least 3 connections (one per shard), not --connections 2",
        )

    def test_tooFewMessages(self) -> None:
        """
        A shard with no message to send would run forever (C{--count 0}):
        refused.
        """
        with self.assertRaises(ShardError) as caught:
            splitRun(ClientSettings(connections=4, count=3), 3, 4)
        self.assertIn("--count 3 is too few messages to split over 4 shards", str(caught.exception))

    def test_tooSmallARate(self) -> None:
        """
        A shard with no rate would be a closed loop: refused.
        """
        with self.assertRaises(ShardError):
            splitRun(ClientSettings(connections=4, rate=0.002), 0, 4)

    def test_identity(self) -> None:
        """
        The identity depends on what the shards must share (here the seed,
        the rate, the shard count, C{--start-at}, C{--plain} and
        C{--fail-fast}), and on nothing else
        (the thresholds); C{--run-id} replaces it.
        """
        base = ClientSettings(connections=10, rate=100.0)
        same = runIdentity(replace(base, maxP99=3.0), 2, 5.0)
        self.assertEqual(runIdentity(base, 2, 5.0), same)
        for other in (
            runIdentity(replace(base, seed=1), 2, 5.0),
            runIdentity(replace(base, rate=101.0), 2, 5.0),
            runIdentity(base, 3, 5.0),
            runIdentity(base, 2, 6.0),
            runIdentity(replace(base, plain=True), 2, 5.0),
            runIdentity(replace(base, failFast=True), 2, 5.0),
        ):
            self.assertNotEqual(other, same)
        self.assertEqual(splitRun(base, 0, 2, "nightly")[1].runId, "nightly")


class ParseShardTests(SynchronousTestCase):
    """
    C{--shard I/N} and C{auto/N} as typed.
    """

    def test_index(self) -> None:
        """
        C{I/N} gives both.
        """
        self.assertEqual(parseShard("2/3", {}), (2, 3))
        self.assertEqual(parseShard(" 0/1 ", {}), (0, 1))

    def test_auto(self) -> None:
        """
        C{auto/N} reads I from C{JOB_COMPLETION_INDEX}.
        """
        self.assertEqual(parseShard("auto/3", {INDEX_VARIABLE: "1"}), (1, 3))

    def test_autoWithoutTheVariable(self) -> None:
        """
        Without the variable, one line names it.
        """
        with self.assertRaises(ShardError) as caught:
            parseShard("auto/3", {})
        self.assertEqual(
            str(caught.exception), "--shard auto/3 needs JOB_COMPLETION_INDEX, which is not set"
        )

    def test_autoOutOfRange(self) -> None:
        """
        An index out of range, or not a number, is one line naming the
        variable and its value.
        """
        for value, expected in (
            ("3", "JOB_COMPLETION_INDEX='3' is out of range: shards of 3 are 0 to 2"),
            ("x", "JOB_COMPLETION_INDEX='x' is not a shard index (a whole number from 0)"),
            ("-1", "JOB_COMPLETION_INDEX='-1' is not a shard index (a whole number from 0)"),
        ):
            with self.assertRaises(ShardError) as caught:
                parseShard("auto/3", {INDEX_VARIABLE: value})
            self.assertEqual(str(caught.exception), expected)

    def test_bad(self) -> None:
        """
        Anything else is refused in one line naming the option.
        """
        for text in ("3", "1/0", "a/b", "1/x", "3/3", "/3", "1/٣"):
            with self.assertRaises(ShardError) as caught:
                parseShard(text, {})
            self.assertIn("--shard", str(caught.exception))
