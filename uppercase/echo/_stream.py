"""
The stream echoes themselves: L{UppercaseProtocol} sends every byte back
with ASCII C{a}-C{z} turned into C{A}-C{Z}, and nothing else;
L{EchoProtocol} sends every byte back unchanged (RFC 862's echo).  Both are
a L{StreamEcho}, which holds all they share (flow control, half-close, the
graceful close); what they send back is their only difference.

They work with C{Factory.forProtocol} on any stream transport, and know
nothing of options, limits, logs or the reactor; the server's policies
(L{uppercase.server._factory}) are layered on them by subclassing.

    >>> from twisted.internet.protocol import Factory
    >>> from uppercase.echo._stream import EchoProtocol, UppercaseProtocol
    >>> factory = Factory.forProtocol(UppercaseProtocol)
    >>> plain = Factory.forProtocol(EchoProtocol)

C{bytes.upper} is C{toupper} in the C locale: binary-safe, byte by byte, so
the result does not depend on how the stream is chunked.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol
from zope.interface import implementer

from uppercase.echo._throttle import ThrottledReading
from uppercase.net.interfaces import canHalfClose

__all__ = ["EchoProtocol", "StreamEcho", "UppercaseProtocol"]


@implementer(IHalfCloseableProtocol)
class StreamEcho(ThrottledReading, Protocol):
    """
    What every stream echo shares; a subclass's C{dataReceived} says what
    goes back (L{UppercaseProtocol}, L{EchoProtocol}): it sends it with
    L{send}, adds the bytes received to L{echoed}, and does neither once
    L{closing} (it adds them to L{discarded} instead).

    B{Flow control}: the protocol registers itself as its transport's
    streaming producer, so a full write buffer (a peer that sends but does
    not read) pauses reading from that transport until it drains; memory
    stays bounded and nothing is dropped.

    B{Half-close}: when the peer ends its sending side, everything owed is
    sent and then the connection is closed.  (On TLS, the peer's
    C{close_notify} is that end when the TLS layer says so, as the
    server's listeners do: L{uppercase.net.transport.halfClosingTLS}.)

    B{Graceful close} (L{finish}): deliver what was already echoed, end the
    stream, and read and discard whatever the peer still sends until it
    closes too, so that closing never turns into a reset that destroys
    replies the peer has not read yet.

    @ivar echoed: bytes received and sent back.
    @ivar discarded: bytes received after L{finish}, not sent back.
    @ivar closing: whether the connection is being closed (by L{finish}, or
        because the peer finished sending).
    @ivar peerFinished: whether the peer ended its sending side.
    @ivar halfClosed: whether L{finish} half-closed (a FIN follows the
        replies).
    """

    echoed = 0
    discarded = 0
    closing = False
    peerFinished = False
    halfClosed = False

    send: Callable[[bytes], None]
    """Where the replies go: the transport's C{write}, taken once in
    C{connectionMade}.  A subclass may choose a quicker equivalent there (the
    server does: L{uppercase.net.transport.directWriter})."""

    def connectionMade(self) -> None:
        self.throttleReading()
        self.send = self.transport.write

    def readConnectionLost(self) -> None:
        """
        The peer ended its sending side: send what is still owed, then close.
        """
        self.peerFinished = True
        self.closing = True
        self.releaseThrottle()
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        """
        Our sending side is shut down (only after L{finish}): keep reading,
        and discarding, until the peer closes.
        """

    def finish(self, inputMayWait: bool = True) -> None:
        """
        Stop echoing and close gracefully.

        What was already echoed is delivered first.  Then a TCP or
        UNIX-socket connection half-closes (a FIN after the last reply) and
        keeps reading, discarding, until the peer closes its side; a TLS
        connection sends TLS's C{close_notify} and waits for the peer's.
        This holds for a connection that has echoed nothing too (it may
        have been accepted with the peer's bytes still unread, and closing
        a socket with unread input makes the kernel send a reset instead of
        a FIN), unless the caller knows better.
        Either may wait on the peer forever: whoever calls this bounds the
        wait (L{uppercase.server._factory.UppercaseFactory} aborts after its close
        timeout).

        @param inputMayWait: whether bytes from the peer may be waiting
            unread; if not (a connection idle since it was opened), one
            that has echoed nothing is simply closed: no reset can come of
            it, and there is no peer worth waiting for.
        """
        if self.closing:
            return
        self.closing = True
        transport = self.transport
        self.releaseThrottle()
        if (self.echoed or inputMayWait) and canHalfClose(transport):
            self.halfClosed = True
            transport.loseWriteConnection()
        else:
            transport.loseConnection()
        # Reading may be paused by flow control: resume it, so that the
        # peer's end (FIN, or TLS's close_notify) can be seen.  (Twisted's
        # transports ignore this once they are closing for good.)
        transport.resumeProducing()


class UppercaseProtocol(StreamEcho):
    """
    Send every received byte back, ASCII-uppercased.
    """

    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            self.discarded += len(data)
            return
        self.send(data.upper())
        self.echoed += len(data)


class EchoProtocol(StreamEcho):
    """
    Send every received byte back unchanged: the echo of RFC 862, which
    tools such as socat, ncat, Perl's C{Net::Ping} or echoping expect.  The
    received bytes themselves are sent: nothing is copied.
    """

    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            self.discarded += len(data)
            return
        self.send(data)
        self.echoed += len(data)
