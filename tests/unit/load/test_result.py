"""
Specification of L{uppercase.load.result}: a run's result, and the thresholds that make it a check.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tests.unit.load.test_run import LOAD, LoadRunCase
from uppercase.load.result import RunResult


class ThresholdTests(LoadRunCase):
    """
    Thresholds turn a run into a check.
    """

    def run10(self, **thresholds: Any) -> RunResult:
        """
        10 messages at 10/s, each answered 50 ms after it is due.
        """
        self.start(dataclasses.replace(LOAD, rate=10, count=10, **thresholds))
        transport = self.connect.succeed()
        for _ in range(10):
            self.clock.advance(0.05)
            self.connect.answer(transport)
            self.clock.advance(0.05)
        self.clock.advance(0)
        return self.result()

    def test_held(self) -> None:
        """
        p99 50 ms against --max-p99 60 and 10/s against --min-rate 5:
        status 0.
        """
        result = self.run10(maxP99=60.0, minRate=5.0)
        self.assertEqual([check.ok for check in result.checks], [True, True])
        self.assertEqual(result.status, 0)

    def test_latencyOver(self) -> None:
        """
        p50 50 ms against --max-p50 40: status 1 and the reason.
        """
        result = self.run10(maxP50=40.0)
        self.assertEqual(result.status, 1)
        self.assertRegex(result.failure or "", r"^p50 latency 50\.\d+ ms is over --max-p50 40$")

    def test_rateUnder(self) -> None:
        """
        About 10 verified messages/s against --min-rate 100: status 1.
        """
        result = self.run10(minRate=100.0)
        self.assertEqual(result.status, 1)
        self.assertRegex(
            result.failure or "", r"^verified rate .* messages/s is under --min-rate 100$"
        )

    def test_nothingMeasured(self) -> None:
        """
        A threshold with nothing measured fails: a check never passes by
        default.
        """
        self.start(dataclasses.replace(LOAD, count=1, maxP99=10.0))
        transport = self.connect.succeed()
        transport.reset()
        result = self.result()
        self.assertFalse(result.checks[0].ok)
        self.assertEqual(result.status, 1)
