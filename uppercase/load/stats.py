"""
What a load run counts: messages sent, verified and failed, bytes, errors
by kind, mismatches (the reply verifier's, L{Mismatch}: the first few in
full), and the latency histogram of the measured part of the run.  The protocols write here; reports only read.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable

from uppercase.client._datagram import DatagramCounts
from uppercase.client._ending import EarlyEnd
from uppercase.client._verifier import Mismatch
from uppercase.load.histogram import Latencies

__all__ = ["KEPT_ENDS", "KEPT_MISMATCHES", "LoadStats", "describeMismatch"]

KEPT_MISMATCHES = 10
"""Mismatches described in full; the rest are counted."""

KEPT_ENDS = 10
"""Connections that ended early described in full; the rest are counted."""


def describeMismatch(mismatch: Mismatch) -> str:
    """
    The load mode's line for a mismatch: the verifier's, the one line every
    mode gives (L{Mismatch.__str__}).
    """
    return str(mismatch)


def _ignore(mismatch: Mismatch) -> None:
    pass


def _ignoreEnd(end: EarlyEnd) -> None:
    pass


class LoadStats:
    """
    The counts of one run (or of one process of a run).

    @ivar sent: messages sent.
    @ivar answered: messages whose reply arrived in full.
    @ivar verified: replies that matched, byte for byte.
    @ivar failed: replies with at least one wrong byte.
    @ivar lost: messages sent whose reply never came in full (connection
        lost, reply time-out, cut off after the duration).
    @ivar notSent: messages that fell due (open loop) while there was no
        connection to send them on: never sent, so not lost either.
    @ivar measured: verified messages scheduled after the warm-up: those
        whose latencies are recorded.
    @ivar measuredBytes: their bytes (each way).
    @ivar streamBytes: bytes verified by C{--stream} connections.
    @ivar latencies: the measured latencies since the last L{roll} (the
        protocols record here).
    @ivar total: the measured latencies up to the last L{roll}.
    @ivar measureFrom: messages scheduled before this time are left out of
        L{latencies} (the warm-up).
    @ivar lastMeasured: when the last measured reply arrived.
    @ivar errors: errors by kind (C{refused}, C{timeout}, C{mismatch}...).
    @ivar mismatches: the first L{KEPT_MISMATCHES} mismatches.
    @ivar mismatchCount: every mismatch (one per wrong message at most).
    @ivar datagrams: over UDP, the datagram counts of every socket
        (L{DatagramCounts}); L{None} over a stream.
    @ivar ends: the first L{KEPT_ENDS} connections that ended early (reset,
        closed early, timed out: L{EarlyEnd}), with their byte counts.
    @ivar endBytes: for each kind of early end, the fewest and the most
        bytes received on a connection that ended so.
    """

    def __init__(
        self,
        onMismatch: Callable[[Mismatch], None] = _ignore,
        onEnd: Callable[[EarlyEnd], None] = _ignoreEnd,
    ) -> None:
        self.sent = 0
        self.answered = 0
        self.verified = 0
        self.failed = 0
        self.lost = 0
        self.notSent = 0
        self.measured = 0
        self.measuredBytes = 0
        self.streamBytes = 0
        self.measureFrom = 0.0
        self.lastMeasured = 0.0
        self.latencies = Latencies()
        self.total = Latencies()
        self.errors: Counter[str] = Counter()
        self.mismatches: list[Mismatch] = []
        self.mismatchCount = 0
        self.onMismatch = onMismatch
        self.datagrams: DatagramCounts | None = None
        self.ends: list[EarlyEnd] = []
        self.endBytes: dict[str, tuple[int, int]] = {}
        self.onEnd = onEnd

    def mismatch(self, mismatch: Mismatch) -> None:
        """
        Count a mismatch; keep the first few.
        """
        self.mismatchCount += 1
        self.errors["mismatch"] += 1
        if len(self.mismatches) < KEPT_MISMATCHES:
            self.mismatches.append(mismatch)
        self.onMismatch(mismatch)

    def ended(self, end: EarlyEnd) -> None:
        """
        Count a connection that ended early as an error of its kind, with
        its byte counts; keep the first few.
        """
        self.errors[end.kind] += 1
        least, most = self.endBytes.get(end.kind, (end.received, end.received))
        self.endBytes[end.kind] = (min(least, end.received), max(most, end.received))
        if len(self.ends) < KEPT_ENDS:
            self.ends.append(end)
        self.onEnd(end)

    def error(self, kind: str, count: int = 1) -> None:
        """
        Count an error of kind C{kind}.
        """
        self.errors[kind] += count

    @property
    def errorCount(self) -> int:
        return sum(self.errors.values())

    def roll(self) -> dict[str, float] | None:
        """
        End an interval: move L{latencies} into L{total}.

        @return: the interval's percentiles (see L{Latencies.summary}).
        """
        interval = self.latencies.summary()
        self.total.add(self.latencies)
        self.latencies.reset()
        return interval
