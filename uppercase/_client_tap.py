"""
C{twistd uppercase-client}: the client's options, and the service that keeps
reconnecting until C{--count} replies are verified.
"""

from __future__ import annotations

from typing import Any

from twisted.application.internet import ClientService
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.failure import Failure
from zope.interface import implementer

from ._clientsettings import ClientSettings
from ._connect import (
    EXAMPLES,
    clientEndpoint,
    connectWithin,
    describeConnectFailure,
    isCancellation,
)
from ._options import oneLineErrors, preferFastTextLog
from ._report import RoundTrips
from .client import UppercaseClientFactory

log = Logger()


class ClientOptions(usage.Options):
    """
    Options shared by C{uppercase-client} and C{twistd uppercase-client},
    one per L{ClientSettings} field; after parsing, C{settings} holds them.
    Bad values raise L{usage.UsageError}.
    """

    synopsis = "[--connect ENDPOINT] [--message TEXT] [--count N] [options]"
    longdesc = (
        "Send TEXT followed by a newline, wait for the whole reply, check that "
        "it is the ASCII-uppercase of what was sent, and repeat.  ENDPOINT is "
        "a Twisted client endpoint string: " + ", ".join(EXAMPLES) + "."
    )
    optParameters = ClientSettings.optParameters()

    settings: ClientSettings

    def postOptions(self) -> None:
        preferFastTextLog(self)
        self.settings = ClientSettings.fromOptions(self)


Options = oneLineErrors(ClientOptions, "uppercase-client")
"""The options class C{twistd} uses: one line per usage error."""


@implementer(IStreamClientEndpoint)
class AttemptEndpoint:
    """
    The endpoint L{ClientService} connects through: each attempt is bounded
    by C{timeout}, and a failed attempt is logged with its reason before
    being passed on (L{ClientService} retries).
    """

    def __init__(
        self,
        endpoint: IStreamClientEndpoint,
        description: str,
        timeout: float,
        clock: IReactorTime,
    ) -> None:
        self._endpoint = endpoint
        self._description = description
        self._timeout = timeout
        self._clock = clock

    def __str__(self) -> str:
        return self._description

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        d = connectWithin(self._endpoint, protocolFactory, self._timeout, self._clock)
        d.addErrback(self._failed)
        return d

    def _failed(self, failure: Failure) -> Failure:
        if not isCancellation(failure):
            log.warn(
                "Cannot connect to {endpoint}: {reason}",
                endpoint=self._description,
                reason=describeConnectFailure(failure),
            )
        return failure


class RepeatingClientService(MultiService):
    """
    Run the client under a L{ClientService}, and stop the reactor when it is
    done: after C{--count} verified replies, or at the first wrong reply.
    """

    def __init__(
        self,
        factory: UppercaseClientFactory,
        endpoint: IStreamClientEndpoint,
        reactor: Any,
        rtts: RoundTrips | None = None,
    ) -> None:
        super().__init__()
        self.factory = factory
        self.rtts = rtts if rtts is not None else RoundTrips()
        self._reactor = reactor
        self.clientService = ClientService(endpoint, factory, clock=reactor)
        self.clientService.setServiceParent(self)

    def startService(self) -> None:
        super().startService()
        self.factory.finished.addCallbacks(self._succeeded, self._failed)

    def _succeeded(self, _: None) -> None:
        log.info(
            "All {count} replies verified, {rtt}",
            count=self.factory.verified,
            rtt=self.rtts.describe(),
            rtt_ms=self.rtts.millis(),
        )
        self._stopReactor()

    def _failed(self, failure: Failure) -> None:
        log.critical("Stopping: {reason}", reason=failure.getErrorMessage())
        self._stopReactor()

    def _stopReactor(self) -> None:
        if self._reactor.running:
            self._reactor.stop()


def makeService(config: ClientOptions, reactor: Any = None) -> RepeatingClientService:
    """
    Build the client's service from parsed options; nothing connects until
    it is started.
    """
    if reactor is None:
        from twisted.internet import reactor

    settings = config.settings
    rtts = RoundTrips()

    def logReply(sequence: int, reply: bytes, rtt: float) -> None:
        rtts.add(rtt)
        log.info(
            "Reply {sequence}: {reply!r} in {rtt_ms:.3f} ms",
            sequence=sequence,
            reply=reply,
            rtt_ms=rtt * 1000,
        )

    factory = UppercaseClientFactory(settings, clock=reactor, onReply=logReply)
    endpoint = AttemptEndpoint(
        clientEndpoint(reactor, settings.connect), settings.connect, settings.timeout, reactor
    )
    return RepeatingClientService(factory, endpoint, reactor, rtts)
