"""What the uppercase-client command prints: replies, round-trip times, and
a closing summary like ping's, as text or as JSON lines."""

from __future__ import annotations

import json
import math
import os
import sys
from typing import IO, Any, Callable, Mapping, Protocol

DATAGRAM_EXTRAS = ("corrupted", "late", "duplicated", "reordered", "foreign")
"""The UDP counts a text summary gives after C{lost} when not 0."""


def silenceOutput(stream: IO[str] | IO[bytes] | None = None) -> None:
    """
    Point C{stream}'s descriptor (standard output's by default) at
    C{/dev/null}, once writing to it has failed, so that what is still in
    its buffer is dropped instead of failing again when the interpreter
    flushes it at exit (which prints C{Exception ignored ... BrokenPipeError}).
    """
    try:
        descriptor = (sys.stdout if stream is None else stream).fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError):
        return
    try:
        os.dup2(devnull, descriptor)
    finally:
        os.close(devnull)


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """
    C{n} with thousands separators and C{noun}, singular for one:
    C{1 message}, C{1,000 messages}, C{2 replies} (with C{plural}).
    """
    return f"{n:,} {noun if n == 1 else (plural or noun + 's')}"


def plainNumber(value: float) -> str:
    """
    C{value} as a person writes it, with thousands separators and no
    exponent: C{100,000,000} (not C{1e+08}), C{0.5}, C{2,500.25}.
    """
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.6f}".rstrip("0").rstrip(".")


class BinaryOutput(Protocol):
    """
    Where a report writes its bytes: a binary file, or an L{Output}.
    """

    def write(self, data: bytes, /) -> object: ...

    def flush(self) -> object: ...


class Output:
    """
    A run's standard output (or error): each write is flushed at once; the first write
    that fails (a closed pipe, a full disk) is remembered in C{error}, tells
    C{onFailure}, and makes every later write do nothing, so that the run
    can end as it should instead of raising out of whatever printed.

    @ivar error: the error the first failed write raised, or L{None}.
    @ivar onFailure: called with that error, once, when set.
    """

    def __init__(self, stream: IO[Any]) -> None:
        self._stream = stream
        self.error: OSError | None = None
        self.onFailure: Callable[[OSError], object] | None = None

    def write(self, data: Any, /) -> None:
        if self.error is not None:
            return
        try:
            self._stream.write(data)
            self._stream.flush()
        except OSError as e:
            self.error = e
            silenceOutput(self._stream)
            if self.onFailure is not None:
                self.onFailure(e)

    def flush(self) -> None:
        """
        Nothing: every write is flushed already.
        """

    def isatty(self) -> bool:
        """
        Whether the stream is a terminal.
        """
        try:
            return self._stream.isatty()
        except (OSError, ValueError):
            return False


class RoundTrips:
    """
    Running round-trip statistics, in constant memory (a run may be endless).
    """

    def __init__(self) -> None:
        self.count = 0
        self._sum = 0.0
        self._sumSquares = 0.0
        self.minimum = math.inf
        self.maximum = 0.0

    def add(self, seconds: float) -> None:
        self.count += 1
        self._sum += seconds
        self._sumSquares += seconds * seconds
        self.minimum = min(self.minimum, seconds)
        self.maximum = max(self.maximum, seconds)

    def describe(self) -> str:
        """
        C{rtt min/avg/max/mdev = a/b/c/d ms}, as ping says it; empty before
        the first reply.
        """
        millis = self.millis()
        if millis is None:
            return ""
        return "rtt min/avg/max/mdev = {min:.3f}/{avg:.3f}/{max:.3f}/{mdev:.3f} ms".format(**millis)

    def millis(self) -> dict[str, float] | None:
        """
        C{min}, C{avg}, C{max} and C{mdev} (ping's mean deviation:
        sqrt(mean(rtt^2) - mean(rtt)^2)) in milliseconds, or L{None} before
        the first reply.
        """
        if not self.count:
            return None
        mean = self._sum / self.count
        variance = max(self._sumSquares / self.count - mean * mean, 0.0)
        return {
            "min": self.minimum * 1000,
            "avg": mean * 1000,
            "max": self.maximum * 1000,
            "mdev": math.sqrt(variance) * 1000,
        }


class TextReport:
    """
    Each reply as it came (with its round-trip time if asked), then
    C{N sent, N received, N verified, rtt min/avg/max/mdev = a/b/c/d ms}.
    """

    def __init__(self, out: BinaryOutput, showRtt: bool = False) -> None:
        self._out = out
        self._showRtt = showRtt

    def reply(self, sequence: int, reply: bytes, rtt: float) -> None:
        if self._showRtt:
            reply = reply.rstrip(b"\n") + b"  seq=%d time=%.3f ms\n" % (sequence, rtt * 1000)
        self._out.write(reply)
        self._out.flush()

    def summary(
        self,
        sent: int,
        received: int,
        verified: int,
        rtts: RoundTrips,
        error: str | None,
        datagrams: Mapping[str, int] | None = None,
    ) -> None:
        line = f"{sent} sent, {received} received, {verified} verified"
        if datagrams is not None:
            line += f", {datagrams['lost']} lost"
            line += "".join(f", {datagrams[k]} {k}" for k in DATAGRAM_EXTRAS if datagrams[k])
        if rtts.count:
            line += ", " + rtts.describe()
        self._out.write(line.encode() + b"\n")
        self._out.flush()


class JSONReport:
    """
    One JSON object per line: C{{"type": "reply", ...}} per reply, then
    C{{"type": "summary", ...}} with C{"ok"} and C{"error"}.
    """

    def __init__(self, out: BinaryOutput) -> None:
        self._out = out

    def _emit(self, record: dict[str, Any]) -> None:
        self._out.write(json.dumps(record).encode() + b"\n")
        self._out.flush()

    def reply(self, sequence: int, reply: bytes, rtt: float) -> None:
        self._emit(
            {
                "type": "reply",
                "seq": sequence,
                "bytes": len(reply),
                "rtt_ms": round(rtt * 1000, 6),
                "reply": reply.decode("utf-8", "backslashreplace"),
            }
        )

    def summary(
        self,
        sent: int,
        received: int,
        verified: int,
        rtts: RoundTrips,
        error: str | None,
        datagrams: Mapping[str, int] | None = None,
    ) -> None:
        millis = rtts.millis()
        record: dict[str, Any] = {
            "type": "summary",
            "sent": sent,
            "received": received,
            "verified": verified,
            "rtt_ms": None if millis is None else {k: round(v, 6) for k, v in millis.items()},
            "ok": error is None,
            "error": error,
        }
        if datagrams is not None:
            record["datagrams"] = dict(datagrams)
        self._emit(record)
