"""
The server as a service (L{uppercase.server}'s service, by the name it has always had).
"""

from __future__ import annotations

from uppercase.server._service import ListenError, NamedListener, UppercaseService

__all__ = ["ListenError", "NamedListener", "UppercaseService"]
