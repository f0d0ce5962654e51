"""
Latency histograms: the C{hdrhistogram} package's HDR histogram, in
microseconds, from 1 us to an hour, to 3 significant digits (a recorded
value is within 0.1% of the true one), in constant memory however long the
run.

Reading one back is cheap: C{hdrhistogram} walks its 23,552 counters in
Python for each percentile, and zeroes them one by one to reset, which cost
a load run's once-a-second progress line 3 ms of the reactor's time on
CPython and 5-28 ms on PyPy, charged to the latencies of the replies it
held up.  Here percentiles and buckets come from one C-speed copy of the
counters between the smallest and largest value recorded, and a reset is a
new histogram.
"""

from __future__ import annotations

import ctypes
from array import array
from bisect import bisect_left
from itertools import accumulate
from typing import Any, Sequence

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

__all__ = ["PERCENTILES", "Latencies"]

LOWEST_US = 1
HIGHEST_US = 3600 * 1000 * 1000
SIGNIFICANT_DIGITS = 3

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
"""The percentiles reports show, with the maximum."""


class Latencies:
    """
    Latencies recorded in seconds, read back as percentiles in
    milliseconds.
    """

    def __init__(self) -> None:
        self._histogram: Any = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)

    @property
    def count(self) -> int:
        """
        How many latencies were recorded.
        """
        return int(self._histogram.get_total_count())

    def record(self, seconds: float, count: int = 1) -> None:
        """
        Record C{count} latencies of C{seconds} each (clamped to the
        histogram's range: below a microsecond counts as one).
        """
        micros = int(seconds * 1e6)
        if micros < LOWEST_US:
            micros = LOWEST_US
        elif micros > HIGHEST_US:
            micros = HIGHEST_US
        self._histogram.record_value(micros, count)

    def recordMicros(self, micros: int, count: int = 1) -> None:
        """
        Record C{count} latencies of C{micros} microseconds, already within
        range (the hot path: L{record} without the conversion).
        """
        self._histogram.record_value(micros, count)

    def percentile(self, percentile: float) -> float:
        """
        The latency below which C{percentile}% of them fall, in
        milliseconds (0 when nothing was recorded).
        """
        return self.percentiles([percentile])[0]

    def percentiles(self, percentiles: Sequence[float]) -> list[float]:
        """
        L{percentile} of each of C{percentiles}, in one pass: what
        C{hdrhistogram}'s C{get_value_at_percentile} gives, to the
        microsecond.
        """
        histogram = self._histogram
        total = int(histogram.get_total_count())
        window = _window(histogram)
        if not total or window is None:
            return [float(histogram.get_value_at_percentile(p)) / 1000 for p in percentiles]
        low, counts = window
        cumulative = list(accumulate(counts))
        values = []
        for percentile in percentiles:
            target = max(int(min(percentile, 100.0) * total / 100 + 0.5), 1)
            value = histogram.get_value_from_index(low + bisect_left(cumulative, target))
            if percentile:
                value = histogram.get_highest_equivalent_value(value)
            else:
                value = histogram.get_lowest_equivalent_value(value)
            values.append(float(value) / 1000)
        return values

    def maximum(self) -> float:
        """
        The largest latency, in milliseconds (0 when nothing was recorded).
        """
        if not self.count:
            return 0.0
        return float(self._histogram.get_max_value()) / 1000

    def summary(self) -> dict[str, float] | None:
        """
        C{p50}, C{p90}, C{p99}, C{p99.9} and C{max}, in milliseconds, or
        L{None} when nothing was recorded.
        """
        if not self.count:
            return None
        figures = dict(zip((f"p{p:g}" for p in PERCENTILES), self.percentiles(PERCENTILES)))
        figures["max"] = self.maximum()
        return figures

    def add(self, other: Latencies) -> None:
        """
        Add every latency C{other} recorded.
        """
        if other.count:
            self._histogram.add(other._histogram)

    def reset(self) -> None:
        """
        Forget everything recorded (a new histogram: C{hdrhistogram}'s
        C{reset} zeroes each counter in Python).
        """
        self._histogram = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)

    def encode(self) -> str:
        """
        The histogram in HdrHistogram's compressed base64 form (what
        L{decode} reads; what other HdrHistogram tools read too).
        """
        encoded: bytes = self._histogram.encode()
        return encoded.decode("ascii")

    @classmethod
    def decode(cls, encoded: str) -> Latencies:
        """
        The histogram L{encode} gave.
        """
        latencies = cls()
        latencies._histogram = HdrHistogram.decode(encoded.encode("ascii"))
        return latencies

    def buckets(self) -> list[tuple[float, int]]:
        """
        Every distinct recorded value (in milliseconds) with its count, in
        increasing order, for Prometheus histograms (what C{hdrhistogram}'s
        recorded iterator gives, from one C-speed copy of the counters).
        """
        histogram = self._histogram
        window = _window(histogram) if histogram.get_total_count() else None
        if window is None:
            return [
                (float(item.value_iterated_to) / 1000, int(item.count_at_value_iterated_to))
                for item in histogram.get_recorded_iterator()
            ]
        low, counts = window
        highest = histogram.get_highest_equivalent_value
        fromIndex = histogram.get_value_from_index
        return [
            (float(highest(fromIndex(low + offset))) / 1000, int(count))
            for offset, count in enumerate(counts)
            if count
        ]


def _window(histogram: Any) -> tuple[int, Sequence[int]] | None:
    """
    The counters of C{histogram} from the smallest value recorded to the
    largest, copied at C speed, with the index of the first; L{None} when
    they cannot be read so (another C{hdrhistogram}, whose callers then ask
    it the slow way).

    This is the one place that reads C{hdrhistogram}'s insides: its counters
    (a C{ctypes} array) and C{_counts_index_for}.
    """
    try:
        counts = histogram.counts
        indexFor = histogram._counts_index_for
        size = ctypes.sizeof(counts._type_)
        codes = [code for code in "HILQ" if array(code).itemsize == size]
        low = indexFor(histogram.get_min_value())
        high = min(indexFor(histogram.get_max_value()), len(counts) - 1)
        if not codes or not 0 <= low <= high:
            return None
        window = array(
            codes[0],
            ctypes.string_at(ctypes.addressof(counts) + low * size, (high - low + 1) * size),
        )
    except (AttributeError, TypeError, ValueError):
        return None
    if sum(window) != histogram.get_total_count():
        return None
    return low, window
