"""
C{twistd uppercase-client}: the client's options, and the service that keeps
reconnecting until C{--count} replies are verified.

It stops the reactor when it is done: after C{--count} verified replies
(twistd then exits 0), or at the first wrong reply or an endpoint that can
never connect (exit status 1, set through L{uppercase.cli.exitstatus}, since
twistd has no way of its own).  Stopped from outside (Ctrl-C, SIGTERM), it
closes its connection and logs how far it got.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

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

from uppercase.cli.exitstatus import exitWithStatusAtExit
from uppercase.cli.options import checkPidFile, oneLineErrors, preferFastTextLog, usageErrors
from uppercase.client._connect import (
    EXAMPLES,
    clientEndpoint,
    connectWithin,
    describeConnectFailure,
    isCancellation,
    isWorthRetrying,
)
from uppercase.client._datagram import HEADER_SIZE, MAX_DATAGRAM, MAX_SOCKETS
from uppercase.client._ping import UppercaseClientFactory
from uppercase.client._report import RoundTrips
from uppercase.client._settings import LOAD_OPTIONS, ClientSettings
from uppercase.client._udp import isDatagram
from uppercase.load.prober import LoadService

log = Logger()

ExitStatus = Callable[[int], None]
"""Told the process's exit status when the client fails."""


class _Default(str):
    """
    An option's default as L{usage.Options} holds it until the option is
    given: a string like any other, but one that tells it was not given.
    """


def _markDefaults(parameters: list[list[Any]]) -> list[list[Any]]:
    return [
        [name, short, None if default is None else _Default(default), doc]
        for name, short, default, doc in parameters
    ]


class ClientOptions(usage.Options):
    """
    Options shared by C{uppercase-client} and C{twistd uppercase-client},
    one per L{ClientSettings} field; after parsing, C{settings} holds them.
    Bad values raise L{usage.UsageError}.
    """

    synopsis = "[--connect ENDPOINT] [--message TEXT] [--count N] [options]"
    longdesc = (
        "Send TEXT followed by a newline, wait for the whole reply, check that "
        "it is the ASCII-uppercase of what was sent (with --plain: what was sent), and "
        "repeat.  ENDPOINT is "
        "a Twisted client endpoint string: " + ", ".join(EXAMPLES) + "."
    )
    optParameters = _markDefaults(ClientSettings.optParameters())
    optFlags = [
        ["stream", None, "Load: stream random bytes full duplex, then half-close."],
        ["fail-fast", None, "Load: stop at the first wrong byte or connection that ends early."],
        ["plain", None, "Expect replies unchanged (an RFC 862 echo), not uppercased."],
    ]

    settings: ClientSettings

    def postOptions(self) -> None:
        with usageErrors():
            self._postOptions()

    def _postOptions(self) -> None:
        preferFastTextLog(self)
        checkPidFile(self)
        # Any load option makes a load run, even at its default value.
        given = any(not isinstance(self[name], _Default) for name in LOAD_OPTIONS)
        settings = ClientSettings.fromOptions(
            self,
            stream=bool(self["stream"]),
            failFast=bool(self["fail-fast"]),
            load=given,
            plain=bool(self["plain"]),
        )
        checkLoadSettings(settings)
        self.settings = settings


def checkLoadSettings(settings: ClientSettings) -> None:
    """
    Refuse combinations of settings that cannot work together.

    @raise usage.UsageError: saying which.
    """
    if settings.stream and settings.rate:
        raise usage.UsageError("--stream sets its own pace: it takes no --rate")
    if settings.stream and settings.pipeline:
        raise usage.UsageError("--stream sends no messages: it takes no --pipeline")
    kind = settings.connect.split(":", 1)[0].lower()
    if settings.sendProxy and kind in ("tls", "ssl"):
        raise usage.UsageError(
            "--send-proxy sends its header before any TLS, which tls: endpoints cannot do"
        )
    checkDatagramSettings(settings)


def checkDatagramSettings(settings: ClientSettings) -> None:
    """
    Refuse what makes no sense over UDP, and C{--max-loss} over a stream.

    @raise usage.UsageError: saying which.
    """
    if not isDatagram(settings.connect):
        if settings.maxLoss:
            raise usage.UsageError("--max-loss counts lost datagrams: it needs -c udp:HOST:PORT")
        return
    if settings.stream:
        raise usage.UsageError("--stream streams bytes over a connection: not over udp:")
    if settings.sendProxy:
        raise usage.UsageError("--send-proxy starts a connection with a header: not over udp:")
    if settings.isLoad and not HEADER_SIZE < settings.size <= MAX_DATAGRAM:
        raise usage.UsageError(
            f"--size over udp: must be from {HEADER_SIZE + 1} (a {HEADER_SIZE}-byte header and "
            f"a payload) to {MAX_DATAGRAM:,}, not {settings.size:,}"
        )
    if settings.connections > MAX_SOCKETS:
        raise usage.UsageError(f"--connections over udp: must be at most {MAX_SOCKETS:,}")
    if len(settings.message) + 1 + HEADER_SIZE > MAX_DATAGRAM:
        raise usage.UsageError(f"--message is too long for one datagram of {MAX_DATAGRAM:,} bytes")


Options = oneLineErrors(ClientOptions, "uppercase-client")
"""The options class C{twistd} uses: one line per usage error."""


@implementer(IStreamClientEndpoint)
class AttemptEndpoint:
    """
    The endpoint L{ClientService} connects through: each attempt is bounded
    by C{timeout}; a failed attempt is logged with its reason and passed on
    (L{ClientService} retries); an attempt that can never succeed is handed
    to C{giveUp} instead, and held until the service stops, so that nothing
    retries it; so is one that fails when attempts have failed for
    C{bound} seconds since the last connection (a finite run against a
    port that keeps refusing), if a bound is given.
    """

    def __init__(
        self,
        endpoint: IStreamClientEndpoint,
        description: str,
        timeout: float,
        clock: IReactorTime,
        giveUp: Callable[[str], None],
        bound: float | None = None,
    ) -> None:
        self._bound = bound
        self._failingSince: float | None = None
        self._endpoint = endpoint
        self._description = description
        self._timeout = timeout
        self._clock = clock
        self._giveUp = giveUp

    def __str__(self) -> str:
        return self._description

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        d = connectWithin(self._endpoint, protocolFactory, self._timeout, self._clock)
        d.addCallbacks(self._connected, self._failed)
        return d

    def _connected(self, protocol: IProtocol) -> IProtocol:
        self._failingSince = None
        return protocol

    def _failed(self, failure: Failure) -> Failure | Deferred[IProtocol]:
        if isCancellation(failure):
            return failure
        reason = describeConnectFailure(failure)
        now = self._clock.seconds()
        if self._failingSince is None:
            self._failingSince = now
        failing = now - self._failingSince
        if self._bound is not None and failing >= self._bound:
            reason = f"{reason} (for {failing:.0f} s)"
        elif isWorthRetrying(failure):
            log.warn(
                "Cannot connect to {endpoint}: {reason}",
                endpoint=self._description,
                reason=reason,
            )
            return failure
        # The service is in the middle of this attempt: give up once it is
        # over, and meanwhile hold the attempt (its cancellation, when the
        # service stops, ends it).
        self._clock.callLater(0, self._giveUp, f"cannot connect to {self._description}: {reason}")
        return Deferred()


class RepeatingClientService(MultiService):
    """
    Run the client under a L{ClientService}, and stop the reactor when it is
    done: after C{--count} verified replies, or at the first wrong reply.

    @ivar clientService: the L{ClientService} that connects and reconnects.
    """

    def __init__(
        self,
        factory: UppercaseClientFactory,
        endpoint: IStreamClientEndpoint,
        reactor: Any,
        exitStatus: ExitStatus,
        rtts: RoundTrips | None = None,
    ) -> None:
        super().__init__()
        self.factory = factory
        self.rtts = rtts if rtts is not None else RoundTrips()
        self._reactor = reactor
        self._exitStatus = exitStatus
        self._ended = False
        settings = factory.settings
        # A finite run gives up on a port that refuses for --timeout
        # seconds; a prober (--count 0) keeps trying: the server may be
        # restarting.
        attempts = AttemptEndpoint(
            endpoint,
            settings.connect,
            settings.timeout,
            reactor,
            self._givenUp,
            settings.timeout if settings.count else None,
        )
        self.clientService = ClientService(attempts, factory, clock=reactor)
        self.clientService.setServiceParent(self)

    def startService(self) -> None:
        super().startService()
        self.factory.finished.addCallbacks(self._succeeded, self._failed)

    def stopService(self) -> Deferred[None]:
        """
        Stop (the reactor is stopping): if the run was not over yet, log how
        far it got; close the connection cleanly.
        """
        if not self._ended:
            self._ended = True
            self._logProgress()
        self.factory.stop()
        stopped: Deferred[None] = super().stopService()
        return stopped

    def _logProgress(self) -> None:
        count = self.factory.settings.count
        fields = dict(
            verified=self.factory.verified,
            count=count,
            rtt=self.rtts.describe() or "no reply yet",
            rtt_ms=self.rtts.millis(),
        )
        if count:
            log.info("Stopped: {verified} of {count} replies verified, {rtt}", **fields)
        else:
            log.info("Stopped: {verified} replies verified, {rtt}", **fields)

    def _succeeded(self, _: None) -> None:
        log.info(
            "All {count} replies verified, {rtt}",
            count=self.factory.verified,
            rtt=self.rtts.describe(),
            rtt_ms=self.rtts.millis(),
        )
        self._end()

    def _failed(self, failure: Failure) -> None:
        self._givenUp(failure.getErrorMessage())

    def _givenUp(self, reason: str) -> None:
        if self._ended:
            return
        log.critical("Stopping: {reason}", reason=reason)
        self._exitStatus(1)
        self._end()

    def _end(self) -> None:
        """
        Stop connecting (before the connection just lost, if any, could
        schedule a retry), then the reactor.
        """
        self._ended = True
        self.clientService.stopService()
        if self._reactor.running:
            self._reactor.stop()


def makeService(
    config: ClientOptions, reactor: Any = None, exitStatus: ExitStatus | None = None
) -> RepeatingClientService | LoadService:
    """
    Build the client's service from parsed options (a L{LoadService} when
    any load option is set); nothing connects until it is started.

    @param exitStatus: told the exit status when the client fails; by
        default L{exitWithStatusAtExit}, which makes the process exit with
        it.  Tests pass their own.
    """
    if reactor is None:
        from twisted.internet import reactor
    if exitStatus is None:
        exitStatus = exitWithStatusAtExit

    settings = config.settings
    if isDatagram(settings.connect):
        if not settings.isLoad:
            # Ping's pace as an open loop: one datagram per --interval.
            rate = 1 / settings.interval if settings.interval else 0.0
            settings = dataclasses.replace(settings, rate=rate, load=True)
        return LoadService(settings, None, reactor, exitStatus)
    if settings.isLoad:
        return LoadService(settings, clientEndpoint(reactor, settings.connect), reactor, exitStatus)
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
    endpoint = clientEndpoint(reactor, settings.connect)
    return RepeatingClientService(factory, endpoint, reactor, exitStatus, rtts)
