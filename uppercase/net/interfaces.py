"""
The transport extensions uppercase uses beyond Twisted's C{ITransport},
declared as interfaces (as Twisted's C{protocols/haproxy/_interfaces.py}
declares its own), and L{canHalfClose}, which decides by interfaces alone.

This module imports nothing but interfaces (zope's and Twisted's), so that
every layer can name them: the server, which asks for them; L{uppercase.testing}, whose
L{StreamTransport<uppercase.testing.StreamTransport>} provides them; and the
PROXY wrapper's transports.  Twisted's own TCP and UNIX-socket transports
provide none of them: L{uppercase.net.transport} (the one place that reads
Twisted's private fields) answers for them, and falls back to the public API
when those fields have moved.
"""

from __future__ import annotations

from twisted.internet.interfaces import (
    IHalfCloseableDescriptor,
    ISSLTransport,
    ITCPTransport,
    ITransport,
)
from zope.interface import Interface

__all__ = ["IDirectWrite", "IDirectWriteTarget", "IPendingBytes", "IUnsentInKernel", "canHalfClose"]


class IPendingBytes(Interface):
    """
    A transport that can say how many of the bytes written to it it still
    holds: written, and not yet sent.  A peer that closes while some are
    still held lost them; one that closes when none are ended cleanly.
    """

    def pendingBytes() -> int | None:
        """
        Bytes written and not yet handed on (to the kernel, for a socket; to
        the peer, for an in-memory transport), or L{None} when that cannot
        be known (a transport that stands for another that cannot say).
        """


class IUnsentInKernel(Interface):
    """
    A transport that can say what a TCP socket's kernel would: how many
    bytes were written to the kernel and not yet taken by the peer.
    """

    def unsentInKernel() -> int | None:
        """
        Bytes handed on and not yet acknowledged by the peer, or L{None}
        when that cannot be known.
        """


class IDirectWrite(Interface):
    """
    A transport with a write that hands the bytes on at once when nothing
    is queued before them, instead of on the reactor's next turn.
    """

    def writeDirectly(data: bytes) -> None:
        """
        Write C{data} as C{write} does -- same order, same flow control,
        same half-close -- but handing it on at once when nothing is queued
        before it.
        """


class IDirectWriteTarget(Interface):
    """
    A transport that stands for another one (the PROXY protocol's transport,
    which is a connection's own but for its addresses): writes may go
    straight to that one.
    """

    def directWriteTarget() -> object:
        """
        The transport this one stands for, which receives its writes.
        """


def canHalfClose(transport: ITransport) -> bool:
    """
    Whether C{transport} can end its sending side alone (C{shutdown(SHUT_WR)}
    after what is buffered) and go on reading: TCP and UNIX-socket
    transports, and wrappers that provide the same interfaces, but never TLS,
    whose close is a C{close_notify} for both directions.  Decided by
    interfaces, never by looking for C{loseWriteConnection} through
    wrappers: a TLS transport is closed with TLS's own C{close_notify},
    never by half-closing the TCP stream beneath it.
    """
    return (
        not ISSLTransport.providedBy(transport)
        and IHalfCloseableDescriptor.providedBy(transport)
        and ITCPTransport.providedBy(transport)
    )
