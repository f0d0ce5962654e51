"""
The echo layer: the stream echo protocols (uppercase, and plain as RFC 862
has it), with their flow control and half-close.
"""

from __future__ import annotations

from uppercase.echo._stream import EchoProtocol, StreamEcho, UppercaseProtocol

__all__ = ["EchoProtocol", "StreamEcho", "UppercaseProtocol"]
