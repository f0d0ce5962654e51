"""
What a load run asks of its connections (L{ILoadConnection}), whatever
they carry (messages: L{uppercase.load.protocol.LoadProtocol}; a C{--stream}:
L{uppercase.load.stream.StreamProtocol}), and what they tell it (L{Owner}).
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from twisted.python.failure import Failure

from uppercase.client._ending import EarlyEnd

__all__ = ["ILoadConnection", "Owner", "Preamble", "noPreamble"]

Preamble = Callable[[Any], bytes]
"""Given the transport, what to send before the first message (a PROXY
header), or C{b""}."""


def noPreamble(transport: Any) -> bytes:
    """
    Nothing to send before the first message.
    """
    return b""


class ILoadConnection(Protocol):
    """
    One connection of a load run, as the run (L{uppercase.load.run.LoadRun})
    and its schedule (L{uppercase.load.schedule}) see it.

    @ivar number: the connection's number in the run (from 1).
    @ivar transport: its transport (C{abortConnection}, C{TCP_INFO}).
    @ivar lastProgress: when bytes last arrived, or when it last started
        waiting for some: what the run's time-out looks at.
    @ivar timedOut: the run gave up on it (a time-out, the drain after the
        end ran out, or the run stopped before its TLS handshake was
        over): its loss is not counted again.
    """

    number: int
    transport: Any
    lastProgress: float
    timedOut: bool

    @property
    def inFlight(self) -> int:
        """What was sent and has not come back yet (messages, or bytes)."""

    @property
    def waiting(self) -> bool:
        """Whether it waits for the server (a reply, or its close)."""

    def room(self) -> int:
        """How many more messages it takes now (0: none)."""

    def send(self, count: int, first: float, step: float = 0.0) -> None:
        """Send C{count} messages, the I{i}th due at C{first + i * step}."""

    def start(self) -> None:
        """The run begins: start what the connection does by itself."""

    def close(self) -> None:
        """Send nothing more; close once what is in flight is back."""

    def dropInFlight(self) -> int:
        """Give up on what is in flight; return how many messages it was."""

    def earlyEnd(self, kind: str) -> EarlyEnd:
        """
        This connection ending now as C{kind} (before L{dropInFlight}
        forgets what was owed), with the bytes it received and still owed.
        """

    def countLoss(self, reason: Failure, interrupted: bool) -> bool:
        """
        The connection is gone (C{reason}): count what that lost in the
        run's stats (unless C{interrupted}, a signal cut it short), and
        say whether it ended as it should have.
        """


class Owner:
    """
    What a load connection tells the run it belongs to (see
    L{uppercase.load.run.LoadRun}, which is one).
    """

    def opened(self, connection: ILoadConnection) -> None:
        """
        The connection is up (on TLS, its handshake not over yet): the run
        waits for it, but hands it nothing yet.
        """

    def connected(self, connection: ILoadConnection) -> None:
        """The connection can carry messages (on TLS, after the handshake)."""

    def room(self, connection: ILoadConnection) -> None:
        """C{connection} can take more messages."""

    def lost(self, connection: ILoadConnection, reason: Failure) -> None:
        """The connection is gone."""
