"""
The echo layer: the stream echo protocol, with its flow control and half-close.
"""

from __future__ import annotations

from uppercase.echo._stream import UppercaseProtocol

__all__ = ["UppercaseProtocol"]
