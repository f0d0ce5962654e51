"""
Specification of L{uppercase.load.histogram}: latency percentiles from an HDR histogram.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from uppercase.load.histogram import Latencies


class LatencyTests(SynchronousTestCase):
    """
    Percentiles come from the HDR histogram, to its precision.
    """

    def test_knownDistribution(self) -> None:
        """
        Latencies of 1, 2, ... 1000 ms: p50 500, p90 900, p99 990, p99.9
        999, max 1000 ms, each within the histogram's 0.1%.
        """
        latencies = Latencies()
        for ms in range(1, 1001):
            latencies.record(ms / 1000)
        summary = latencies.summary()
        assert summary is not None
        for key, expected in (
            ("p50", 500),
            ("p90", 900),
            ("p99", 990),
            ("p99.9", 999),
            ("max", 1000),
        ):
            self.assertApproximates(summary[key], expected, expected * 0.001)

    def test_countsAndMerging(self) -> None:
        """
        Recording with a count is recording that many times; histograms
        merge, also through their encoded form (as workers' would).
        """
        a, b = Latencies(), Latencies()
        a.record(0.001, 99)
        b.record(0.1)
        a.add(Latencies.decode(b.encode()))
        self.assertEqual(a.count, 100)
        self.assertApproximates(a.percentile(99), 1.0, 0.001)
        self.assertApproximates(a.maximum(), 100.0, 0.1)

    def test_empty(self) -> None:
        """
        With nothing recorded there is no summary.
        """
        self.assertIsNone(Latencies().summary())

    def test_clamped(self) -> None:
        """
        A latency below a microsecond counts as one; above an hour, as an
        hour.
        """
        latencies = Latencies()
        latencies.record(0.0)
        latencies.record(10000.0)
        self.assertEqual(latencies.count, 2)
        self.assertApproximates(latencies.maximum(), 3600 * 1000, 3600)
