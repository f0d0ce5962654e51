"""
The PROXY protocol (v1 and v2): the header's bytes read and written with no
I/O (L{decodeHeader}, L{encodeHeader}), and the Twisted wrapper that serves
PROXY connections with any server factory (L{ProxyHeaderFactory}).
"""

from __future__ import annotations

from uppercase.proxy._codec import Address, ProxyHeader, decodeHeader, encodeHeader
from uppercase.proxy._wrapper import (
    Addresses,
    InvalidHeader,
    ProxiedTransport,
    ProxyHeaderFactory,
    ProxyHeaderProtocol,
    SlotLimit,
    parseHeader,
)

__all__ = [
    "Address",
    "ProxyHeader",
    "decodeHeader",
    "encodeHeader",
    "Addresses",
    "InvalidHeader",
    "ProxiedTransport",
    "ProxyHeaderFactory",
    "ProxyHeaderProtocol",
    "SlotLimit",
    "parseHeader",
]
