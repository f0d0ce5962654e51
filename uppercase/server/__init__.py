"""
The server layer: the echo with a server's policies (admission, idle timeout, refusals, graceful close, faults), and the service that listens.
"""

from __future__ import annotations

from uppercase.server._factory import (
    PREVIEW_BYTES,
    PlainServerProtocol,
    ServerEcho,
    ServerProtocol,
    UppercaseFactory,
    preview,
)
from uppercase.server._faults import FaultError, FaultSet, FaultSpec, parseFault
from uppercase.server._service import ListenError, NamedListener, UppercaseService

__all__ = [
    "FaultError",
    "FaultSet",
    "FaultSpec",
    "ListenError",
    "NamedListener",
    "PREVIEW_BYTES",
    "PlainServerProtocol",
    "ServerEcho",
    "ServerProtocol",
    "UppercaseFactory",
    "UppercaseService",
    "parseFault",
    "preview",
]
