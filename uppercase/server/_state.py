"""
What the server's factory tells of its counts (L{ServerState}): read by the
metrics collector (L{uppercase.server._metrics}) and by a worker reporting
to its supervisor (L{uppercase.workers.worker}).
"""

from __future__ import annotations

import typing
from typing import Sized

__all__ = ["ServerState"]


class ServerState(typing.Protocol):
    """
    What the metrics collector and a worker read of the server's factory
    (L{uppercase.server.UppercaseFactory}) to report its counts.
    """

    @property
    def accepted(self) -> int:
        """Connections accepted."""

    @property
    def connections(self) -> Sized:
        """The connections open now."""

    @property
    def rejected(self) -> int:
        """Connections refused because of a limit or a shutdown."""

    @property
    def idleClosed(self) -> int:
        """Connections closed for being idle."""

    def byteCounts(self) -> tuple[int, int]:
        """Bytes received from and sent back to clients."""
