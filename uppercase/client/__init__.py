"""
The client layer: the repeating (ping) client, its settings, connecting, TLS, and the one reply verifier.
"""

from __future__ import annotations

from uppercase.client._ping import (
    STOP_GRACE,
    ClientError,
    ClientSettings,
    ConnectionClosedEarly,
    ReplyMismatch,
    ReplyTimeout,
    UppercaseClientFactory,
    UppercaseClientProtocol,
)
from uppercase.client._verifier import Mismatch, ReplyVerifier

__all__ = [
    "ClientError",
    "ClientSettings",
    "ConnectionClosedEarly",
    "Mismatch",
    "ReplyMismatch",
    "ReplyTimeout",
    "ReplyVerifier",
    "STOP_GRACE",
    "UppercaseClientFactory",
    "UppercaseClientProtocol",
]
