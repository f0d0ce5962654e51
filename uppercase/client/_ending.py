"""
How a connection ended before every byte due had come back, in the words
every mode uses (the ping client, load runs, C{--stream}, the prober):
C{reset after N bytes}, C{closed early (N of M bytes)}, C{timed out after N
bytes}, each with the bytes received on the connection and the bytes still
owed, so that a fault's effect (a reset after 64 KB, a FIN after 10 KB, a
stall) shows as what it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from uppercase.client._report import counted

__all__ = [
    "CLOSED",
    "CLOSED_EARLY",
    "RESET",
    "TIMED_OUT",
    "EarlyEnd",
    "endKind",
]

CLOSED = "closed by server"
"""A FIN with nothing owed (between messages): an end, not a cut."""

CLOSED_EARLY = "closed early"
"""A FIN while bytes were owed: the stream was cut off."""

RESET = "reset"
"""A reset (an RST), whatever was owed."""

TIMED_OUT = "reply timeout"
"""No byte for C{--timeout} seconds while some were owed: a stall or a
blackhole; the client gave up and aborted."""


def endKind(kind: str, owed: int) -> str:
    """
    The kind an ended connection is counted under: a FIN (C{kind} as
    L{uppercase.client._connect.errorKind} names it) is C{closed early}
    when bytes were owed; every other kind stays as it is.
    """
    if kind == CLOSED and owed:
        return CLOSED_EARLY
    return kind


@dataclass(frozen=True)
class EarlyEnd:
    """
    A connection that ended (or was given up on) as it should not have.

    @ivar connection: its number (from 1; 0 when there is only one, as in
        the ping client, which then names none).
    @ivar kind: the error kind it is counted under (L{RESET},
        L{CLOSED_EARLY}, L{CLOSED}, L{TIMED_OUT}, or another of
        L{uppercase.client._connect.errorKind}'s).
    @ivar received: bytes that came back on it.
    @ivar owed: bytes sent whose reply had not come back.
    """

    connection: int
    kind: str
    received: int
    owed: int

    def detail(self) -> str:
        """
        What happened, without the connection: C{reset after 64,000 bytes
        received, 1,000 owed}, C{closed early (10,000 of 12,000 bytes)},
        C{timed out after 1,000 bytes received, 2,345 owed}.
        """
        received = counted(self.received, "byte")
        if self.kind == CLOSED_EARLY:
            return (
                f"closed early ({self.received:,} of {counted(self.received + self.owed, 'byte')})"
            )
        what = "timed out" if self.kind == TIMED_OUT else self.kind
        return f"{what} after {received} received, {self.owed:,} owed"

    def __str__(self) -> str:
        if not self.connection:
            return self.detail()
        return f"connection {self.connection}: {self.detail()}"

    def asJSON(self) -> dict[str, Any]:
        return {
            "connection": self.connection,
            "kind": self.kind,
            "received_bytes": self.received,
            "owed_bytes": self.owed,
        }
