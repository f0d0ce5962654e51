"""
The echo layer: the stream echo protocols (uppercase, and plain as RFC 862
has it), with their flow control and half-close; the datagram echo, with its
bounds and counts.
"""

from __future__ import annotations

from uppercase.echo._datagram import (
    DROP_REASONS,
    MAX_DATAGRAM,
    DatagramAdmission,
    DatagramCounts,
    DatagramEcho,
)
from uppercase.echo._stream import EchoProtocol, StreamEcho, UppercaseProtocol

__all__ = [
    "DROP_REASONS",
    "DatagramAdmission",
    "DatagramCounts",
    "DatagramEcho",
    "EchoProtocol",
    "MAX_DATAGRAM",
    "StreamEcho",
    "UppercaseProtocol",
]
