"""
Latency histograms: the C{hdrhistogram} package's HDR histogram, in
microseconds, from 1 us to an hour, to 3 significant digits (a recorded
value is within 0.1% of the true one), in constant memory however long the
run.
"""

from __future__ import annotations

from typing import Any

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
        return float(self._histogram.get_value_at_percentile(percentile)) / 1000

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
        figures = {f"p{p:g}": self.percentile(p) for p in PERCENTILES}
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
        Forget everything recorded.
        """
        self._histogram.reset()

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
        increasing order, for Prometheus histograms.
        """
        return [
            (float(item.value_iterated_to) / 1000, int(item.count_at_value_iterated_to))
            for item in self._histogram.get_recorded_iterator()
        ]
