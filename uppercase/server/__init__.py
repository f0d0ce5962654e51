"""
The server layer: the echo with a server's policies (admission, idle timeout, refusals, graceful close), and the service that listens.
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
from uppercase.server._service import ListenError, NamedListener, UppercaseService

__all__ = [
    "ListenError",
    "NamedListener",
    "PREVIEW_BYTES",
    "PlainServerProtocol",
    "ServerEcho",
    "ServerProtocol",
    "UppercaseFactory",
    "UppercaseService",
    "preview",
]
