"""
Flow control for an echo: the transport's write buffer throttles its reads.

An echo server writes what it reads.  If the peer sends but does not read,
the replies pile up in the transport's write buffer.  Registering a
streaming producer on the transport makes Twisted call C{pauseProducing}
when that buffer passes its high-water mark (64 KiB) and C{resumeProducing}
when it has drained; pausing the transport stops reading from the socket, so
the kernel's receive window closes and the peer is slowed down, not dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

if TYPE_CHECKING:
    from .server import UppercaseProtocol


@implementer(IPushProducer)
class ReadThrottle:
    """
    The producer registered on a connection's transport: pauses and resumes
    reading from that same transport, and tells the protocol each time its
    write buffer drained (which counts as activity for the idle timeout).
    """

    __slots__ = ("_protocol",)

    def __init__(self, protocol: UppercaseProtocol) -> None:
        self._protocol = protocol

    def pauseProducing(self) -> None:
        self._protocol.transport.pauseProducing()

    def resumeProducing(self) -> None:
        protocol = self._protocol
        protocol.drains += 1
        protocol.transport.resumeProducing()

    def stopProducing(self) -> None:
        """
        The transport is gone (it calls this from its C{connectionLost});
        there is nothing left to stop.
        """


def owesData(transport: Any) -> bool:
    """
    Whether C{transport} still holds written bytes that it has not handed to
    the kernel.

    Twisted has no public API for this; file-descriptor transports (TCP,
    UNIX) keep the count in C{_tempDataLen}, C{dataBuffer} and C{offset}.  Any
    other transport is assumed to owe data, which only costs a graceful
    half-close where a plain close would have done.
    """
    pending = getattr(transport, "_tempDataLen", None)
    if pending is None:
        return True
    return bool(pending) or len(transport.dataBuffer) > transport.offset
