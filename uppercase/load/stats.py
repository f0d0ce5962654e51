"""
What a load run counts: messages sent, verified and failed, bytes, errors
by kind, mismatches (the first few in full), and the latency histogram of
the measured part of the run.  The protocols write here; reports only read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

from uppercase.load.histogram import Latencies

__all__ = ["KEPT_MISMATCHES", "LoadStats", "Mismatch", "hexExcerpt"]

KEPT_MISMATCHES = 10
"""Mismatches described in full; the rest are counted."""

EXCERPT_BEFORE = 4
EXCERPT_BYTES = 16


def hexExcerpt(data: bytes) -> str:
    """
    C{data} as spaced hex pairs (C{61 62 0a}), or C{(nothing)}.
    """
    return data.hex(" ") if data else "(nothing)"


@dataclass(frozen=True)
class Mismatch:
    """
    A reply byte that differs from what was expected.

    @ivar connection: the connection's number (from 1).
    @ivar message: the message's number on that connection (from 1).
    @ivar offset: where the wrong byte is in the connection's reply stream
        (from 0).
    @ivar messageOffset: where it is in the message (from 0).
    @ivar expected: the expected bytes around it (L{EXCERPT_BYTES} at
        most), empty when no reply was due at all.
    @ivar received: the bytes received at the same places.
    @ivar excerptStart: the offset in the message where both excerpts
        start.
    """

    connection: int
    message: int
    offset: int
    messageOffset: int
    expected: bytes
    received: bytes
    excerptStart: int

    @classmethod
    def around(
        cls,
        *,
        connection: int,
        message: int,
        offset: int,
        messageOffset: int,
        expected: bytes,
        received: bytes,
        index: int,
    ) -> Mismatch:
        """
        The mismatch at C{expected[index] != received[index]}, the two
        being the same stretch of one message; the excerpts start a few
        bytes before it.
        """
        start = max(index - EXCERPT_BEFORE, 0)
        return cls(
            connection,
            message,
            offset,
            messageOffset,
            expected[start : start + EXCERPT_BYTES],
            received[start : start + EXCERPT_BYTES],
            messageOffset - (index - start),
        )

    def __str__(self) -> str:
        if not self.expected:
            return (
                f"connection {self.connection}: unexpected bytes at stream offset "
                f"{self.offset} while no reply was due: {hexExcerpt(self.received)}"
            )
        index = self.messageOffset - self.excerptStart
        end = self.excerptStart + max(len(self.expected), len(self.received)) - 1
        return (
            f"connection {self.connection}, message {self.message}, byte {self.messageOffset} "
            f"(stream offset {self.offset}): expected {self.expected[index]:02x}, received "
            f"{self.received[index]:02x}; bytes {self.excerptStart}-{end}: expected "
            f"{hexExcerpt(self.expected)}, received {hexExcerpt(self.received)}"
        )

    def asJSON(self) -> dict[str, Any]:
        return {
            "connection": self.connection,
            "message": self.message,
            "offset": self.offset,
            "message_offset": self.messageOffset,
            "excerpt_start": self.excerptStart,
            "expected_hex": self.expected.hex(),
            "received_hex": self.received.hex(),
        }


def _ignore(mismatch: Mismatch) -> None:
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
    """

    def __init__(self, onMismatch: Callable[[Mismatch], None] = _ignore) -> None:
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

    def mismatch(self, mismatch: Mismatch) -> None:
        """
        Count a mismatch; keep the first few.
        """
        self.mismatchCount += 1
        self.errors["mismatch"] += 1
        if len(self.mismatches) < KEPT_MISMATCHES:
            self.mismatches.append(mismatch)
        self.onMismatch(mismatch)

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
