"""
C{twistd uppercase}: the server's options and the service they build.
"""

from __future__ import annotations

from typing import Any

from twisted.application import strports
from twisted.application.service import IService, MultiService
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IProtocolFactory, IReactorCore
from twisted.logger import Logger
from twisted.python import usage

from . import __version__
from ._fdlimit import connectionCapacity
from ._options import checkSeconds, checkWholeNumber, oneLineErrors, preferFastTextLog
from ._proxy import ProxyHeaderFactory
from .server import UppercaseFactory

log = Logger()

PROXY_PREFIX = "haproxy:"

DEFAULT_LISTEN = "tcp:9527:backlog=511"
"""Port 9527 on all interfaces, as the reference; with nginx's accept backlog
(511) rather than Twisted's 50, so that a burst of connections is queued by
the kernel instead of having its SYNs dropped (and retried a second later)."""


class ServerOptions(usage.Options):
    """
    Options of C{twistd uppercase}.  Bad values raise L{usage.UsageError}.
    """

    synopsis = "[--listen ENDPOINT ...] [--quiet] [options]"
    longdesc = (
        "An echo server that sends back every byte it receives with ASCII "
        "a-z turned into A-Z.  ENDPOINT is a Twisted server endpoint string "
        "(tcp:9527, tcp:port=9527:interface=127.0.0.1, tcp6:9527, "
        "unix:/run/uppercase.sock, ssl:9527:privateKey=key.pem:"
        "certKey=cert.pem, systemd:domain=INET:index=0)."
    )
    optFlags = [
        ["quiet", "q", "Do not log received data (connections are still logged)."],
    ]
    optParameters = [
        [
            "idle-timeout",
            None,
            "300",
            "Close a connection after this many seconds with nothing received or sent (0: never).",
        ],
        [
            "max-connections",
            None,
            "10000",
            "Most connections open at once (0: unlimited).",
        ],
        [
            "max-per-ip",
            None,
            "0",
            "Most connections open at once from one address (0: unlimited).",
        ],
        [
            "metrics",
            None,
            None,
            "Serve Prometheus metrics at /metrics on this endpoint "
            "(e.g. tcp:9100:interface=127.0.0.1). Off by default.",
        ],
        [
            "shutdown-timeout",
            None,
            "10",
            "On SIGTERM/SIGINT, abort connections still open after this many seconds.",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    def opt_listen(self, description: str) -> None:
        """
        Listen on ENDPOINT (may be given several times) [default: tcp:9527:backlog=511].
        """
        self["listen"].append(description)

    opt_l = opt_listen

    def postOptions(self) -> None:
        preferFastTextLog(self)
        checkSeconds(self, "idle-timeout")
        checkSeconds(self, "shutdown-timeout")
        checkWholeNumber(self, "max-connections")
        checkWholeNumber(self, "max-per-ip")
        if not self["listen"]:
            self["listen"] = [DEFAULT_LISTEN]
        from twisted.internet import reactor

        for description in self["listen"]:
            checkServerEndpoint(reactor, description)
        if self["metrics"] is not None:
            checkServerEndpoint(reactor, self["metrics"], "--metrics")


Options = oneLineErrors(ServerOptions, "uppercase")
"""The options class C{twistd} uses: one line per usage error."""


def checkServerEndpoint(reactor: Any, description: str, option: str = "--listen") -> None:
    """
    Parse C{description} as a server endpoint string without listening.

    @raise usage.UsageError: saying what is wrong with it.
    """
    try:
        serverFromString(reactor, description)
    except Exception as e:
        raise usage.UsageError(f"{option} {description!r} is not a valid endpoint: {e}") from None


def listenerFor(
    description: str, factory: UppercaseFactory, reactor: Any
) -> tuple[str, IProtocolFactory]:
    """
    The endpoint string and factory to listen with for C{description}.

    C{haproxy:ENDPOINT} listens on C{ENDPOINT} and reads a PROXY protocol
    header on each connection, with our own wrapper rather than Twisted's
    (see L{uppercase._proxy} for why).
    """
    if description.startswith(PROXY_PREFIX):
        return description[len(PROXY_PREFIX) :], ProxyHeaderFactory(factory, reactor)
    return description, factory


class UppercaseService(MultiService):
    """
    Listen on every endpoint; on stop, stop accepting at once and shut the
    open connections down gracefully.
    """

    def __init__(
        self,
        factory: UppercaseFactory,
        descriptions: list[str],
        shutdownTimeout: float,
        reactor: IReactorCore,
        metrics: str | None = None,
    ) -> None:
        super().__init__()
        self.factory = factory
        self.descriptions = list(descriptions)
        self.shutdownTimeout = shutdownTimeout
        self.metrics = metrics
        self._listeners: list[tuple[str, IService]] = []
        for description in descriptions:
            self._listen(description, *listenerFor(description, factory, reactor), reactor)
        if metrics is not None:
            from ._metrics import metricsSite

            self._listen(metrics, metrics, metricsSite(factory), reactor)

    def _listen(self, name: str, endpoint: str, factory: IProtocolFactory, reactor: Any) -> None:
        """
        Listen on the C{endpoint} string with C{factory} when started; errors
        refer to it as C{name}.
        """
        listener = strports.service(endpoint, factory, reactor=reactor)
        listener.setServiceParent(self)
        self._listeners.append((name, listener))

    def privilegedStartService(self) -> None:
        """
        Fit the connection limit to the descriptor limit, then listen now, so
        that a port in use or a bad address ends C{twistd} with one line on
        standard error and a non-zero status.
        """
        wanted = self.factory.maxConnections
        capacity, fdLimit = connectionCapacity(wanted)
        if capacity != wanted:
            log.warn(
                "The file descriptor limit ({fdLimit}) allows {capacity} "
                "connections at once; --max-connections is {wanted}",
                fdLimit=fdLimit,
                capacity=capacity,
                wanted=wanted or "unlimited",
            )
            self.factory.maxConnections = capacity
        for description, listener in self._listeners:
            try:
                listener.privilegedStartService()
            except Exception as e:
                reason: object = e
                if isinstance(e, CannotListenError):
                    reason = getattr(e.socketError, "strerror", None) or e.socketError
                raise SystemExit(
                    f"twistd uppercase: cannot listen on {description}: {reason}"
                ) from None

    def startService(self) -> None:
        super().startService()
        log.info(
            "uppercase {version} serving on {endpoints}",
            version=__version__,
            endpoints=", ".join(self.descriptions),
        )
        if self.metrics is not None:
            log.info("Prometheus metrics at /metrics on {endpoint}", endpoint=self.metrics)

    def stopService(self) -> Deferred[Any]:
        draining = self.factory.shutdown(self.shutdownTimeout)
        stopping = super().stopService()
        return gatherResults([stopping, draining])


def makeService(config: usage.Options, reactor: Any = None) -> UppercaseService:
    """
    Build the server's service from parsed options; nothing listens until it
    is started.
    """
    if reactor is None:
        from twisted.internet import reactor
    factory = UppercaseFactory(
        clock=reactor,
        logData=not config["quiet"],
        idleTimeout=config["idle-timeout"],
        maxConnections=config["max-connections"],
        maxPerIP=config["max-per-ip"],
    )
    return UppercaseService(
        factory, config["listen"], config["shutdown-timeout"], reactor, config["metrics"]
    )
