"""
The echo layer: the stream echo protocol, with its flow control and half-close;
the datagram echo, with its bounds and counts.
"""

from __future__ import annotations

from uppercase.echo._datagram import (
    DROP_REASONS,
    MAX_DATAGRAM,
    DatagramAdmission,
    DatagramCounts,
    DatagramEcho,
)
from uppercase.echo._stream import UppercaseProtocol

__all__ = [
    "UppercaseProtocol",
    "DROP_REASONS",
    "MAX_DATAGRAM",
    "DatagramAdmission",
    "DatagramCounts",
    "DatagramEcho",
]
