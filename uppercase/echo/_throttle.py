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

from typing import Any

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer


@implementer(IPushProducer)
class ThrottledReading:
    """
    A protocol mixin: the protocol registers itself as its transport's
    streaming producer, so that the transport's full write buffer pauses
    reading from that same transport.  Each drain is counted in C{drains},
    which counts as activity for the idle timeout.
    """

    transport: Any
    drains = 0
    _throttling = False

    def throttleReading(self) -> None:
        """
        Start throttling (from C{connectionMade}).
        """
        self.transport.registerProducer(self, True)
        self._throttling = True

    def releaseThrottle(self) -> None:
        """
        Stop throttling, which must happen before a close: a transport with
        a producer registered waits for that producer instead of closing once
        its buffer is flushed.
        """
        if self._throttling:
            self._throttling = False
            self.transport.unregisterProducer()

    def pauseProducing(self) -> None:
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self.drains += 1
        self.transport.resumeProducing()

    def stopProducing(self) -> None:
        """
        The transport is gone (it calls this from its C{connectionLost});
        there is nothing left to stop.
        """
