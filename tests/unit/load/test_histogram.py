"""
Specification of L{uppercase.load.histogram}: latency percentiles from an HDR histogram.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from uppercase.load.histogram import HIGHEST_US, LOWEST_US, Latencies, _window


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


class ReadBackTests(SynchronousTestCase):
    """
    Percentiles and buckets read at C speed are C{hdrhistogram}'s own, to
    the microsecond, and a reset forgets everything.
    """

    @settings(max_examples=100, deadline=None)
    @given(
        values=st.lists(
            st.integers(min_value=LOWEST_US, max_value=HIGHEST_US), min_size=1, max_size=60
        ),
        counts=st.lists(st.integers(min_value=1, max_value=1000), min_size=60, max_size=60),
        decoded=st.booleans(),
        added=st.booleans(),
    )
    def test_sameAsHdrhistogram(
        self, values: list[int], counts: list[int], decoded: bool, added: bool
    ) -> None:
        """
        For any recorded values and counts, also read back from the encoded
        form (as a merge does) or added into another histogram (as each
        second's are into the run's), L{Latencies.percentiles} is what
        C{get_value_at_percentile} gives for each of them, and
        L{Latencies.buckets} what the recorded iterator gives, read the fast
        way.
        """
        latencies = Latencies()
        for value, count in zip(values, counts):
            latencies.recordMicros(value, count)
        if decoded:
            latencies = Latencies.decode(latencies.encode())
        if added:
            total = Latencies()
            total.add(latencies)
            latencies = total
        histogram = latencies._histogram
        self.assertIsNotNone(_window(histogram))
        asked = [0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0]
        self.assertEqual(
            latencies.percentiles(asked),
            [histogram.get_value_at_percentile(p) / 1000 for p in asked],
        )
        self.assertEqual(
            latencies.buckets(),
            [
                (item.value_iterated_to / 1000, item.count_at_value_iterated_to)
                for item in histogram.get_recorded_iterator()
            ],
        )

    def test_fallback(self) -> None:
        """
        A histogram whose counters cannot be read directly (another
        C{hdrhistogram}) is asked the slow way, with the same answers.
        """

        class Opaque:
            """
            An C{HdrHistogram} without its counters' attributes.
            """

            def __init__(self, inner: Any) -> None:
                self._inner = inner

            def __getattr__(self, name: str) -> Any:
                if name in ("counts", "_counts_index_for"):
                    raise AttributeError(name)
                return getattr(self._inner, name)

        latencies = Latencies()
        for ms in (1, 2, 3, 50, 700):
            latencies.record(ms / 1000)
        fast = (latencies.summary(), latencies.buckets())
        self.assertIsNotNone(_window(latencies._histogram))
        latencies._histogram = Opaque(latencies._histogram)
        self.assertIsNone(_window(latencies._histogram))
        self.assertEqual((latencies.summary(), latencies.buckets()), fast)

    def test_reset(self) -> None:
        """
        After L{Latencies.reset} nothing is recorded, and what is recorded
        next is all that is read back.
        """
        latencies = Latencies()
        latencies.record(0.5, 10)
        latencies.reset()
        self.assertEqual((latencies.count, latencies.summary(), latencies.buckets()), (0, None, []))
        latencies.record(0.002)
        self.assertEqual(latencies.buckets(), [(2.0, 1)])
        self.assertEqual(latencies.maximum(), 2.0)
