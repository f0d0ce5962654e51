"""
TLS listeners that answer ALPN for the protocols they speak, and ignore it
otherwise.

A client may offer application protocols in its TLS hello (ALPN, RFC 7301:
curl offers C{h2} and C{http/1.1}, C{openssl s_client -alpn ...} what it is
told).  A server that speaks none of them by name, like the uppercase echo,
must ignore the offer and complete the handshake.  Twisted 26.x installs an
ALPN callback on every context its C{CertificateOptions} makes (the C{ssl:}
endpoint's), even when nothing is advertised, and that callback answers
"no overlap" with an empty protocol name, which OpenSSL turns into an
C{internal error} alert: every client that offers ALPN is rejected.  (Twisted
24.7 and 25.x installed no callback without protocols to advertise.  The
change came with Twisted's per-connection ALPN rework, #12506, whose client
side regressed too, #12598; no report of the server side was found.)

L{TLSListening} stands in for the reactor of an C{ssl:} endpoint and, when
the endpoint listens, replaces that callback (before the context makes its
first connection: pyOpenSSL refuses changes after that) with
L{ALPNChooser}: the first of the listener's own protocols that the client
offers; with no protocols, the offer ignored; with protocols but none
offered, the C{no_application_protocol} alert RFC 7301 asks for.

It also listens as Twisted's C{listenSSL} does (C{listenTCP} with Twisted's
TLS factory), but with L{RefusingTLSFactory}, which lets a refusal through:
Twisted's TLS factory wraps whatever its factory returns, L{None} included
(a traceback and a leaked descriptor per refusal), so a refused connection
had to get a protocol that aborted it, and an abort closes the socket only
on the next reactor turn, after the port has accepted a whole burst.  A
plain TCP port closes a refused socket before it accepts the next.

Its connections take a TLS client's C{close_notify} as a half-close
(L{uppercase.net.transport.halfClosingTLS}): the echo sends every reply to
what it read, then its own C{close_notify}.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Sequence

from twisted.internet.interfaces import (
    IAddress,
    IListeningPort,
    IOpenSSLContextFactory,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
)
from twisted.logger import Logger

from uppercase.net.transport import halfClosingTLS

__all__ = ["ALPNChooser", "RefusingTLSFactory", "TLSListening", "answerALPN"]

log = Logger()


class ALPNChooser:
    """
    An ALPN select callback (pyOpenSSL's C{set_alpn_select_callback}) for a
    server that speaks C{protocols}, in order of preference.
    """

    def __init__(self, protocols: Sequence[bytes]) -> None:
        self.protocols = tuple(protocols)

    def __call__(self, connection: object, offered: Sequence[bytes]) -> Any:
        from OpenSSL.SSL import NO_OVERLAPPING_PROTOCOLS, Error

        for protocol in self.protocols:
            if protocol in offered:
                return protocol
        if self.protocols:
            # Raised from the callback, this makes pyOpenSSL tell OpenSSL to
            # send the no_application_protocol alert, then raise it from the
            # handshake, where Twisted's TLS takes it for the reason the
            # connection was lost: so it has the shape of OpenSSL's error
            # queue, a list of (library, function, reason).
            raise Error([("SSL routines", "", "no application protocol")])
        return NO_OVERLAPPING_PROTOCOLS


def answerALPN(contextFactory: object, protocols: Sequence[bytes]) -> bool:
    """
    Make the context of C{contextFactory} answer ALPN with L{ALPNChooser}.

    @return: whether it could: C{contextFactory} gives its context with
        C{getContext} (as Twisted's C{CertificateOptions} does, caching it),
        and no connection was made from that context yet.
    """
    if not IOpenSSLContextFactory.providedBy(contextFactory):
        return False
    context = contextFactory.getContext()
    try:
        context.set_alpn_select_callback(ALPNChooser(protocols))
    except ValueError:
        # pyOpenSSL 25.2 and later: the context already made a connection.
        return False
    return True


def RefusingTLSFactory(
    contextFactory: Any, factory: IProtocolFactory, clock: IReactorTime | None = None
) -> Any:
    """
    Twisted's server-side TLS factory for C{factory} on C{contextFactory},
    except that a connection C{factory} refuses (its C{buildProtocol}
    returns L{None}) is refused, unwrapped, so that the listening port
    closes it at once, and that the client's C{close_notify} is a half-close
    (L{halfClosingTLS}).

    @param clock: what Twisted's TLS schedules its writes on (the reactor
        if L{None}; a test's clock).
    """
    return _refusingClass()(contextFactory, False, factory, clock)


@cache
def _refusingClass() -> Any:
    """
    The class of L{RefusingTLSFactory} (made on first use: Twisted's TLS
    module needs pyOpenSSL).
    """
    from twisted.protocols.tls import TLSMemoryBIOFactory

    class Refusing(TLSMemoryBIOFactory):
        protocol = halfClosingTLS()

        def buildProtocol(self, addr: IAddress | None) -> IProtocol | None:  # type: ignore[override]
            wrapped = self.wrappedFactory.buildProtocol(addr)
            if wrapped is None:
                return None
            protocol: IProtocol = self.protocol(self, wrapped)
            return protocol

    return Refusing


class TLSListening:
    """
    A stand-in reactor for an C{ssl:} endpoint: C{listenSSL} answers ALPN
    with C{protocols}, then listens on C{reactor} with C{listenTCP} and a
    L{RefusingTLSFactory} (see the module docstring); anything else is
    C{reactor}'s.
    """

    def __init__(self, reactor: Any, protocols: Sequence[bytes] = ()) -> None:
        self._reactor = reactor
        self.protocols = tuple(protocols)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)

    def listenSSL(
        self,
        port: int,
        factory: IProtocolFactory,
        contextFactory: Any,
        backlog: int = 50,
        interface: str = "",
    ) -> IListeningPort:
        if not answerALPN(contextFactory, self.protocols):
            log.warn(
                "Cannot set how port {port} answers ALPN: clients that offer an "
                "application protocol may be refused",
                port=port,
            )
        listening: IListeningPort = self._reactor.listenTCP(
            port, RefusingTLSFactory(contextFactory, factory), backlog, interface
        )
        return listening
