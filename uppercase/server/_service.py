"""
The server as a service: listeners for every endpoint, the descriptor limit,
the metrics site, and a graceful stop.

Embeddable in any Twisted application: it raises L{ListenError} when it
cannot listen (never exits the process) and installs no signal handlers;
the command-line layer (L{uppercase.cli.server}) adds those.

    >>> from twisted.internet import reactor
    >>> from uppercase.server._factory import UppercaseFactory
    >>> service = UppercaseService(UppercaseFactory(reactor), ["tcp:9527"], reactor)
"""

from __future__ import annotations

from typing import Any, Sequence

from twisted.application import strports
from twisted.application.service import IService, MultiService
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IProtocolFactory, IReactorTime
from twisted.logger import Logger

from uppercase import __version__
from uppercase.net.adopt import SocketAdopter, workerDescription
from uppercase.net.endpoints import fields
from uppercase.proxy._wrapper import ProxyHeaderFactory
from uppercase.server._endpoints import (
    PROXY_PREFIX,
    systemdSocketProblem,
    withDefaultBacklog,
)
from uppercase.server._factory import UppercaseFactory
from uppercase.server._fdlimit import LimitAccess, connectionCapacity
from uppercase.server._settings import DEFAULTS
from uppercase.server._udp import (
    DatagramListener,
    DatagramServer,
    datagramSocket,
    isUDP,
    parseUDP,
)

__all__ = ["ListenError", "NamedListener", "UppercaseService"]

log = Logger(namespace="uppercase.service")

TLS_TYPES = ("ssl",)
"""Endpoint types that wrap the listening factory in Twisted's TLS."""


class NamedListener(MultiService):
    """
    A listener on one endpoint string, as L{UppercaseService} listens: the
    default backlog (L{uppercase.server._endpoints.withDefaultBacklog}), a
    TLS listener answering ALPN with C{protocols} and closing the
    connections C{factory} refuses at once (L{uppercase.server._tls}), and a
    failure to listen raised as a L{ListenError} that names the endpoint
    (so that the command-line layer reports it in one line).  The
    supervisor of C{--workers} serves its C{--metrics} with it.
    """

    def __init__(
        self,
        description: str,
        factory: IProtocolFactory,
        reactor: Any,
        protocols: Sequence[bytes] = (),
        purpose: str = "",
    ) -> None:
        super().__init__()
        self.description = description
        self.purpose = purpose
        if fields(description)[0].lower() in TLS_TYPES:
            # Only for ssl:, whose module imports pyOpenSSL (the optional
            # [tls] extra).
            from uppercase.server._tls import TLSListening

            reactor = TLSListening(reactor, protocols)
        endpoint = withDefaultBacklog(description)
        strports.service(endpoint, factory, reactor=reactor).setServiceParent(self)

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except Exception as e:
            raise ListenError(self.description, reasonOf(e), self.purpose) from None

    def startService(self) -> None:
        try:
            super().startService()
        except Exception as e:
            raise ListenError(self.description, reasonOf(e), self.purpose) from None


class ListenError(Exception):
    """
    The service could not listen on one of its endpoints.

    @ivar description: the endpoint string.
    @ivar reason: why, in a few words (C{Address already in use}).
    @ivar purpose: what the endpoint is for, when it is not the echo
        (C{metrics}), so that the line says which option to look at.
    """

    def __init__(self, description: str, reason: str, purpose: str = "") -> None:
        super().__init__(description, reason)
        self.description = description
        self.reason = reason
        self.purpose = purpose

    def __str__(self) -> str:
        purpose = f" for {self.purpose}" if self.purpose else ""
        return f"cannot listen{purpose} on {self.description}: {self.reason}"


def reasonOf(error: BaseException | None) -> str:
    """
    Why listening failed, in a few words (C{Address already in use}).
    """
    if isinstance(error, CannotListenError):
        socketError = error.socketError
        return str(getattr(socketError, "strerror", None) or socketError)
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error or "") or type(error).__name__


class UppercaseService(MultiService):
    """
    Listen on every endpoint with C{factory}; on stop, stop accepting at once
    and close the open connections gracefully, within C{shutdownTimeout}
    seconds.

    Every TCP, TLS and UNIX listener gets a backlog of 511 unless its string
    sets one.  C{haproxy:ENDPOINT} listens on C{ENDPOINT} and reads a PROXY
    protocol header on each connection first (L{uppercase.proxy._wrapper}); the
    connections waiting for it count against the factory's limit of
    waiting connections.

    At start, the connection limit is fitted to the process's descriptor
    limit (raising the soft limit if the hard one allows), keeping room for
    the metrics site's connections and for the process's own descriptors,
    so that no kind of connection can starve the others and none fails with
    C{EMFILE}.

    @param metrics: an endpoint string to serve Prometheus metrics on at
        C{/metrics}, or L{None}.
    @param fdLimits: C{(getrlimit, setrlimit, RLIM_INFINITY)} for the
        descriptor limit; the process's own by default.
    @param inherited: for a worker of a supervisor (L{uppercase.workers.supervisor}),
        one listening socket per description, made by the supervisor: each
        description listens on its socket instead of binding one.
    @param control: an endpoint string to serve the fault control API on at
        C{/faults} (L{uppercase.server._control}), or L{None}.
    @param datagrams: the echo over UDP, for C{udp:} endpoints and datagram
        sockets (a C{systemd:} one from C{ListenDatagram=}, or a worker's);
        one with the default limits if not given, plain when C{factory} is.
    """

    def __init__(
        self,
        factory: UppercaseFactory,
        descriptions: Sequence[str],
        reactor: Any,
        *,
        shutdownTimeout: float = DEFAULTS.shutdownTimeout,
        metrics: str | None = None,
        fdLimits: LimitAccess | None = None,
        inherited: Sequence[int] | None = None,
        datagrams: DatagramServer | None = None,
        control: str | None = None,
    ) -> None:
        super().__init__()
        self.control = control
        self.datagrams = datagrams or DatagramServer(
            reactor,
            perSource=DEFAULTS.udpRatePerSource,
            bytesPerSource=DEFAULTS.udpBytesPerSource,
            total=DEFAULTS.udpRate,
            plain=factory.plain,
            logData=factory.logData,
        )
        self.factory = factory
        self.descriptions = list(descriptions)
        self.shutdownTimeout = shutdownTimeout
        self.metrics = metrics
        self._fdLimits = fdLimits
        self._reactor: IReactorTime = reactor
        self._listeners: list[tuple[str, IService, str]] = []
        self._listening = False
        self._inherited = inherited is not None
        if inherited is not None and len(inherited) != len(self.descriptions):
            raise ValueError("one inherited socket per endpoint is needed")
        for index, description in enumerate(self.descriptions):
            fd = (
                inherited[index]
                if inherited is not None
                else systemdDescriptor(description, reactor)
            )
            if isUDP(description) or (fd is not None and datagramSocket(fd)):
                self._listenDatagrams(description, fd, reactor)
                continue
            endpoint = withDefaultBacklog(description)
            listenFactory: IProtocolFactory = factory
            if endpoint.startswith(PROXY_PREFIX):
                endpoint = endpoint[len(PROXY_PREFIX) :]
                listenFactory = ProxyHeaderFactory(factory, reactor, limit=factory.admission)
            listenReactor = reactor
            if inherited is not None:
                endpoint = workerDescription(endpoint)
                listenReactor = SocketAdopter(reactor, [inherited[index]])
            self._listen(description, endpoint, listenFactory, listenReactor)
        self.metricsConnections = 0
        if metrics is not None:
            # Only with --metrics: it loads prometheus_client and twisted.web.
            from uppercase.server._metrics import (
                METRICS_ALPN,
                METRICS_MAX_DESCRIPTORS,
                DatagramCollector,
                FaultCollector,
                metricsFactory,
            )

            # Its connections, and those aborted to make room until closed.
            self.metricsConnections = METRICS_MAX_DESCRIPTORS
            counts = self.datagrams.counts
            site = metricsFactory(
                factory,
                reactor,
                collectors=[
                    DatagramCollector(lambda: counts),
                    FaultCollector(getattr(factory, "faultCounts", dict)),
                ],
            )
            self._listen(
                metrics,
                withDefaultBacklog(metrics),
                site,
                reactor,
                protocols=METRICS_ALPN,
                purpose="metrics",
            )
        if control is not None:
            # Only with --control: it loads twisted.web.
            from uppercase.server._control import (
                CONTROL_ALPN,
                CONTROL_MAX_DESCRIPTORS,
                FaultControl,
                controlFactory,
            )

            self.metricsConnections += CONTROL_MAX_DESCRIPTORS
            self._listen(
                control,
                withDefaultBacklog(control),
                controlFactory(FaultControl(factory.faults, clock=reactor), reactor),
                reactor,
                protocols=CONTROL_ALPN,
                purpose="control",
            )

    def _listen(
        self,
        name: str,
        endpoint: str,
        factory: IProtocolFactory,
        reactor: Any,
        protocols: Sequence[bytes] = (),
        purpose: str = "",
    ) -> None:
        """
        Listen on the C{endpoint} string with C{factory} when started; errors
        refer to it as C{name}, for C{purpose} (see L{ListenError}).  A TLS endpoint answers ALPN with
        C{protocols}, and closes the connections C{factory} refuses at once
        (L{uppercase.server._tls}).
        """
        if fields(endpoint)[0].lower() in TLS_TYPES:
            # Only for ssl: (pyOpenSSL is the optional [tls] extra).
            from uppercase.server._tls import TLSListening

            reactor = TLSListening(reactor, protocols)
        listener = strports.service(endpoint, factory, reactor=reactor)
        listener.setServiceParent(self)
        self._listeners.append((name, listener, purpose))

    def _listenDatagrams(self, name: str, fd: int | None, reactor: Any) -> None:
        """
        Serve the datagram echo on the C{udp:} endpoint C{name}, or on the
        datagram socket C{fd} (whose C{name} says where it came from).
        """
        if fd is not None:
            listener = DatagramListener(self.datagrams, reactor, fd=fd)
        else:
            listener = DatagramListener(self.datagrams, reactor, parseUDP(name))
        listener.setServiceParent(self)
        self._listeners.append((name, listener, ""))

    def fitDescriptorLimit(self) -> None:
        """
        Share the descriptor limit out (see the class docstring), and say so
        when a limit had to be lowered.

        The metrics site gets its fixed share; PROXY-protocol connections
        waiting for their header get theirs (at most a quarter of what is
        left), if any listener reads PROXY headers; open connections get the
        rest.
        """
        admission = self.factory.admission
        proxied = any(d.startswith(PROXY_PREFIX) for d in self.descriptions)
        wanted = admission.maxConnections
        pending = admission.maxPending if proxied else 0
        unlimited = not wanted or (proxied and not pending)
        capacity, fdLimit = connectionCapacity(
            0 if unlimited else wanted + pending + self.metricsConnections, self._fdLimits
        )
        if fdLimit is None:
            return
        left = max(capacity - self.metricsConnections, 2)
        if proxied:
            pending = min(pending or left, max(left // 4, 1))
            admission.maxPending = pending
            left -= pending
        if not wanted or left < wanted:
            admission.maxConnections = left
            log.warn(
                "The file descriptor limit ({fdLimit}) allows {capacity} connections at "
                "once{andPending}; --max-connections is {wanted}",
                fdLimit=fdLimit,
                capacity=left,
                andPending=f" and {pending} waiting for a PROXY header" if proxied else "",
                wanted=wanted or "unlimited",
            )

    def privilegedStartService(self) -> None:
        """
        Fit the connection limit to the descriptor limit, then listen now.

        @raise ListenError: if any endpoint cannot be listened on (the ones
            already listening are closed again).
        """
        if self._listening:
            return
        self.fitDescriptorLimit()
        started: list[IService] = []
        for description, listener, purpose in self._listeners:
            problem = None if self._inherited else systemdSocketProblem(description)
            try:
                if problem is not None:
                    raise ListenError(description, problem, purpose)
                try:
                    listener.privilegedStartService()
                except Exception as e:
                    raise ListenError(description, reasonOf(e), purpose) from None
            except ListenError:
                for other in started:
                    other.stopService()
                raise
            started.append(listener)
        self._listening = True

    def startService(self) -> None:
        """
        Listen (if L{privilegedStartService} has not, as under C{twist}),
        and start serving.

        @raise ListenError: as L{privilegedStartService}.
        """
        self.privilegedStartService()
        super().startService()
        log.info(
            "uppercase {version} serving on {endpoints} ({echo})",
            version=__version__,
            endpoints=", ".join(self.descriptions),
            echo="plain echo, RFC 862" if self.factory.plain else "uppercase echo",
        )
        if self.metrics is not None:
            log.info("Prometheus metrics at /metrics on {endpoint}", endpoint=self.metrics)
        if self.control is not None:
            log.info("Fault control API at /faults on {endpoint}", endpoint=self.control)

    def stopListening(self) -> Deferred[Any]:
        """
        Stop accepting new connections; the open ones go on.

        @return: a L{Deferred} that fires once every listener is closed.
        """
        return gatherResults([listener.stopService() for _, listener, _ in self._listeners])

    def stopService(self) -> Deferred[Any]:
        """
        Stop accepting, and close the open connections gracefully.

        @return: a L{Deferred} that fires once listeners are closed and every
            connection has ended.
        """
        draining = self.factory.shutdown(self.shutdownTimeout)
        stopping = super().stopService()
        return gatherResults([stopping, draining])


def systemdDescriptor(description: str, reactor: Any) -> int | None:
    """
    The descriptor of the socket systemd passed for C{description}, if it
    is a C{systemd:} endpoint string that Twisted finds one for (by
    C{index=} or C{name=}); L{None} otherwise.
    """
    if fields(description)[0].lower() != "systemd":
        return None
    from twisted.internet.endpoints import serverFromString

    try:
        endpoint = serverFromString(reactor, description)
    except Exception:
        return None  # Said when it listens, as for a stream socket.
    fileno = getattr(endpoint, "fileno", None)
    return fileno if isinstance(fileno, int) else None
