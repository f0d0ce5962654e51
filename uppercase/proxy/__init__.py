"""
The PROXY protocol (v1 and v2): the header, read by a wrapper of any server factory, and built for a client to send.
"""

from __future__ import annotations

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
    "Addresses",
    "InvalidHeader",
    "ProxiedTransport",
    "ProxyHeaderFactory",
    "ProxyHeaderProtocol",
    "SlotLimit",
    "parseHeader",
]
