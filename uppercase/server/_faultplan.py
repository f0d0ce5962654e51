"""
What the faults a connection drew do to it, as pure logic fed clock values:
L{ConnectionFaults} (which faults, and when each acts), L{ReplySchedule}
(when the next reply bytes may leave, given latency, bandwidth, slicer and
delay-accept), and L{corrupt}.  No I/O, no Twisted: the server's adapter
(L{uppercase.server._faulty}) asks these and does what they say.
"""

from __future__ import annotations

from collections import deque
from random import Random
from typing import Sequence

from uppercase.server._faultspec import FaultSpec

__all__ = ["RATE_SLACK", "ConnectionFaults", "ReplySchedule", "corrupt"]

RATE_SLACK = 0.01
"""Seconds of unused bandwidth a connection may catch up on (a timer that
fires late does not lower the rate), and so the largest burst, as a time:
at 1MB a second, 10,000 bytes."""

EARLY = 1e-9
"""How early a write may be taken: a timer set for a time may fire at a
float a rounding error before it."""

ENDINGS = ("reset", "stall", "close", "blackhole")
"""The faults that end the replies, in the order they win a tie."""


def corrupt(data: bytes, rng: Random, probability: float) -> bytes:
    """
    C{data}, or, with C{probability} (one draw from C{rng}), C{data} with the
    byte at a random offset (a second draw) XORed with 0x80: a change that
    stays visible whatever the echo does to the byte (uppercasing touches
    only ASCII letters, and never bit 7).
    """
    if not data or rng.random() >= probability:
        return data
    offset = rng.randrange(len(data))
    changed = bytearray(data)
    changed[offset] ^= 0x80
    return bytes(changed)


class ReplySchedule:
    """
    The replies a connection owes, and when each byte may leave.

    L{push} queues a reply chunk as it is read; L{take} gives the next write
    due at a time (or nothing), L{nextTime} when one will be.  Order is
    kept.  A chunk leaves C{latency} (plus or minus up to C{jitter},
    uniformly, from C{rng}) after it was pushed, and none before
    C{acceptDelay} after C{start}; with a C{rate}, writes are at most
    L{RATE_SLACK} seconds' worth and spaced so that no more than C{rate}
    bytes a second leave; with a C{sliceSize}, writes are C{sliceSize} plus
    or minus up to C{sliceVariation} bytes, C{sliceDelay} apart.  With a
    C{limit}, bytes past it are not queued (L{push} says how many were).

    @ivar queued: bytes queued and not yet taken.
    @ivar accepted: bytes pushed and queued, in all.
    @ivar sent: bytes taken, in all.
    """

    def __init__(
        self,
        start: float,
        rng: Random,
        *,
        latency: float = 0.0,
        jitter: float = 0.0,
        rate: int = 0,
        sliceSize: int = 0,
        sliceVariation: int = 0,
        sliceDelay: float = 0.0,
        acceptDelay: float = 0.0,
        limit: int | None = None,
    ) -> None:
        self._rng = rng
        self._latency = latency
        self._jitter = jitter
        self._rate = rate
        self._quantum = max(1, int(rate * RATE_SLACK)) if rate else 0
        self._sliceSize = sliceSize
        self._sliceVariation = sliceVariation
        self._sliceDelay = sliceDelay
        self.limit = limit
        self._chunks: deque[list[object]] = deque()
        self._lastRelease = start + acceptDelay
        self._paced = start + acceptDelay
        self._sliced = start
        self.queued = 0
        self.accepted = 0
        self.sent = 0

    def push(self, data: bytes, now: float) -> int:
        """
        Queue C{data}, read at C{now}, up to the limit.

        @return: how many of its bytes were queued (the rest are dropped).
        """
        if self.limit is not None:
            data = data[: max(0, self.limit - self.accepted)]
        if not data:
            return 0
        release = now + self._latency
        if self._jitter:
            release += self._rng.uniform(-self._jitter, self._jitter)
        release = max(release, self._lastRelease)
        self._lastRelease = release
        self._chunks.append([release, data])
        self.queued += len(data)
        self.accepted += len(data)
        return len(data)

    @property
    def limitReached(self) -> bool:
        """
        Whether every byte up to the limit has been taken.
        """
        return self.limit is not None and self.sent >= self.limit

    def nextTime(self) -> float | None:
        """
        When the next write is due (perhaps already), or L{None} if nothing
        is queued.
        """
        if not self._chunks:
            return None
        release = self._chunks[0][0]
        assert isinstance(release, float)
        return max(release, self._paced, self._sliced)

    def take(self, now: float) -> bytes:
        """
        The next write due at C{now}, taken off the queue; C{b""} if none is.
        """
        due = self.nextTime()
        if due is None or due > now + EARLY:
            return b""
        chunk = self._chunks[0]
        data = chunk[1]
        assert isinstance(data, bytes)
        size = len(data)
        if self._sliceSize:
            variation = self._sliceVariation
            wanted = self._sliceSize + (
                self._rng.randint(-variation, variation) if variation else 0
            )
            size = min(size, wanted)
        if self._rate:
            size = min(size, self._quantum)
        if size == len(data):
            self._chunks.popleft()
        else:
            chunk[1] = data[size:]
            data = data[:size]
        self.queued -= size
        self.sent += size
        if self._rate:
            self._paced = max(self._paced, now - RATE_SLACK) + size / self._rate
        if self._sliceSize:
            self._sliced = now + self._sliceDelay
        return data

    def drop(self) -> int:
        """
        Forget everything queued.

        @return: how many bytes that was.
        """
        dropped = self.queued
        self._chunks.clear()
        self.queued = 0
        return dropped


class ConnectionFaults:
    """
    The faults one connection drew (at most one of each kind counts: the
    first of its kind in the set), with the generator its random choices
    come from, accepted at C{start}.

    @ivar kinds: the kinds it got, in the set's order (the close line's).
    @ivar refuse: whether it is closed at once.
    @ivar corruptProbability: per reply chunk, or L{None}.
    @ivar slowClose: seconds to wait after the peer's end, or L{None}.
    @ivar limitKind: the fault that acts after L{ReplySchedule.limit} reply
        bytes (C{reset}, C{stall}, C{close} or C{blackhole}), or L{None}.
    @ivar timed: C{(seconds, kind)} for each of those that act after a time.
    @ivar schedule: the replies' schedule.
    @ivar holdsBack: whether replies may wait in it (latency, bandwidth,
        slicer, delay-accept) rather than leave as they are made.
    """

    def __init__(self, specs: Sequence[FaultSpec], rng: Random, start: float) -> None:
        first: dict[str, FaultSpec] = {}
        for spec in specs:
            first.setdefault(spec.kind, spec)
        self.kinds = tuple(first)
        self.rng = rng
        self.refuse = "refuse" in first
        self.corruptProbability = first["corrupt"].probability if "corrupt" in first else None
        self.slowClose = first["slow-close"].delay if "slow-close" in first else None
        self.limitKind: str | None = None
        limit: int | None = None
        self.timed: list[tuple[float, str]] = []
        for kind in ENDINGS:
            if kind not in first:
                continue
            spec = first[kind]
            if spec.afterSeconds is not None:
                self.timed.append((spec.afterSeconds, kind))
            elif spec.afterBytes is not None and (limit is None or spec.afterBytes < limit):
                limit, self.limitKind = spec.afterBytes, kind
        latency = first.get("latency")
        slicer = first.get("slicer")
        self.holdsBack = bool({"latency", "bandwidth", "slicer", "delay-accept"} & set(first))
        self.schedule = ReplySchedule(
            start,
            rng,
            latency=latency.delay if latency else 0.0,
            jitter=latency.jitter if latency else 0.0,
            rate=first["bandwidth"].rate if "bandwidth" in first else 0,
            sliceSize=slicer.size if slicer else 0,
            sliceVariation=slicer.variation if slicer else 0,
            sliceDelay=slicer.delay if slicer else 0.0,
            acceptDelay=first["delay-accept"].delay if "delay-accept" in first else 0.0,
            limit=limit,
        )

    def corrupt(self, data: bytes) -> bytes:
        """
        C{data}, perhaps with one byte flipped (see L{corrupt}).
        """
        if self.corruptProbability is None:
            return data
        return corrupt(data, self.rng, self.corruptProbability)
