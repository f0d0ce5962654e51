"""
C{twistd uppercase} and C{twist uppercase}: the server's options, and the
service they build (wiring only: the service itself is
L{uppercase.server._service.UppercaseService}).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
from typing import Any, Callable, Mapping, Sequence, TypeVar

from twisted.application.service import MultiService
from twisted.logger import Logger
from twisted.python import usage

from uppercase import jsonlog, textlog
from uppercase.cli.environment import environmentArguments
from uppercase.cli.options import (
    checkPidFile,
    commandName,
    oneLineErrors,
    preferFastTextLog,
    usageErrors,
)
from uppercase.cli.signals import SignalHandling, WorkerSignalHandling
from uppercase.server._factory import UppercaseFactory
from uppercase.server._faults import (
    MAX_FAULTS,
    FaultError,
    FaultSet,
    FaultSpec,
    parseFault,
    workerSeed,
)
from uppercase.server._service import ListenError, UppercaseService
from uppercase.server._settings import DEFAULTS, ServerSettings, checkServerEndpoint
from uppercase.server._udp import DatagramServer
from uppercase.workers.worker import WORKER_ENV, WorkerControl, WorkerSpec, replaceFaults

log = Logger()

_F = TypeVar("_F", bound=Callable[..., Any])


def _helpLine(text: str) -> Callable[[_F], _F]:
    """
    A decorator giving an C{opt_} method C{text} as its docstring, the line
    C{--help} shows for it (a docstring made at import, which pydoctor would
    not read from a C{__doc__} assignment in the class).
    """

    def setHelp(method: _F) -> _F:
        method.__doc__ = text
        return method

    return setHelp


class ServerOptions(usage.Options):
    """
    Options of C{twistd uppercase}.  Bad values raise L{usage.UsageError}.
    """

    synopsis = "[--listen ENDPOINT ...] [--quiet] [options]"
    longdesc = (
        "An echo server that sends back every byte it receives with ASCII "
        "a-z turned into A-Z (or unchanged, with --plain).  ENDPOINT is a Twisted server endpoint string "
        "(tcp:9527, tcp:port=9527:interface=127.0.0.1, tcp6:9527, "
        "unix:/run/uppercase.sock, ssl:9527:privateKey=key.pem:"
        "certKey=cert.pem, systemd:domain=INET6:index=0, haproxy:tcp:9527, udp:9527); "
        "TCP, TLS and UNIX listeners get a backlog of 511 unless they set one.  "
        "Every option may also be set in the environment, as UPPERCASE_<OPTION> "
        "with dashes as underscores (UPPERCASE_MAX_CONNECTIONS=100, UPPERCASE_QUIET=1; "
        "UPPERCASE_LISTEN takes endpoints separated by blanks); the command line wins."
    )
    optFlags = [
        ["quiet", "q", "Do not log received data (connections are still logged)."],
        ["plain", None, "Echo every byte back unchanged (RFC 862), not uppercased."],
    ]
    optParameters = ServerSettings.optParameters()
    settings: ServerSettings

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self["listen"] = []
        self["fault"] = []
        self._environ = os.environ if environ is None else environ

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """
        Parse C{options} (the command line), after the options the
        environment gives (L{uppercase.cli.environment}).  Not in a worker of
        C{--workers}: its supervisor gives it every option on its command
        line, and the environment it inherits would add the ones it leaves
        out (C{UPPERCASE_METRICS}: every worker on the metrics port).
        """
        argv = sys.argv[1:] if options is None else list(options)
        if WORKER_ENV not in self._environ:
            argv = environmentArguments(self, self._environ, argv, _checkAlone) + argv
        super().parseOptions(argv)

    @_helpLine(f"Listen on ENDPOINT (may be given several times) [default: {DEFAULTS.listen[0]}].")
    def opt_listen(self, description: str) -> None:
        self["listen"].append(description)

    opt_l = opt_listen

    @_helpLine(
        "Apply the fault SPEC to connections: KIND[,NAME=VALUE...], e.g. latency,delay=20ms "
        "(may be given several times; see docs/faults.md)."
    )
    def opt_fault(self, spec: str) -> None:
        self["fault"].append(spec)

    def postOptions(self) -> None:
        with usageErrors():
            self._postOptions()

    def _postOptions(self) -> None:
        preferFastTextLog(self)
        checkPidFile(self)
        inWorker = WorkerSpec.fromEnvironment() is not None
        for description in self["listen"]:
            checkServerEndpoint(description, worker=inWorker)
        if len(self["fault"]) > MAX_FAULTS:
            raise usage.UsageError(
                f"--fault: at most {MAX_FAULTS} faults, not {len(self['fault'])}"
            )
        self.settings = ServerSettings.fromOptions(
            self,
            listen=tuple(self["listen"]) or DEFAULTS.listen,
            logData=not self["quiet"],
            plain=bool(self["plain"]),
            faults=tuple(_parseFault(text) for text in self["fault"]),
        )
        self["listen"] = list(self.settings.listen)


def _parseFault(text: str) -> FaultSpec:
    """
    The fault C{text} says.

    @raise usage.UsageError: one line naming the fault and the field.
    """
    try:
        return parseFault(text)
    except FaultError as e:
        shown = text if len(text) <= 60 else text[:60] + "..."
        raise usage.UsageError(f"--fault {shown!r}: {e}") from None


def _checkAlone(arguments: list[str]) -> None:
    """
    Parse C{arguments} alone, reading no environment.

    @raise usage.UsageError: for a bad value.
    """
    ServerOptions(environ={}).parseOptions(arguments)


Options = oneLineErrors(ServerOptions, "uppercase")
"""The options class C{twistd} uses: one line per usage error."""


class CannotStart(Exception):
    """
    The server could not start (the message says why).

    Its module reads as C{builtins}, so that twistd's start-up report in
    daemon mode, which keeps the first 100 bytes of C{module.Class:
    message}, spends them on the message.
    """


CannotStart.__module__ = "builtins"


class ServerCommand(MultiService):
    """
    The server as a command runs it: with the signal handling operators
    expect (L{uppercase.cli.signals}), and a failure to listen reported as one
    line on standard error (the log has it too) and a non-zero exit status,
    under C{twistd -n}, C{twistd} (through its start-up report) and C{twist}.

    @param server: the service that listens (raising L{ListenError}).
    @param cutShort: what a second stopping signal does.
    @param handlers: what other signals do, by name (see L{SignalHandling}).
    @param signals: the kind of signal handling (a worker's differs).
    @param cleanUp: called when the command cannot start, before it ends:
        undo what starting did (the supervisor's sockets).
    """

    def __init__(
        self,
        server: Any,
        reactor: Any,
        cutShort: Callable[[str], None],
        handlers: Mapping[str, Callable[[], object]] | None = None,
        signals: type[SignalHandling] = SignalHandling,
        cleanUp: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__()

        self.server = server
        self._cleanUp = cleanUp
        server.setServiceParent(self)
        signals(reactor, cutShort, textlog.reopenLogFiles, handlers).setServiceParent(self)

    _privileged = False

    def privilegedStartService(self) -> None:
        self._privileged = True
        try:
            super().privilegedStartService()
        except ListenError as e:
            raise self._failed(e) from None

    def startService(self) -> None:
        if not self._privileged:
            # twist starts services without the privileged step: take it
            # first, so that every endpoint is listened on (or fails) before
            # any child starts (the supervisor would spawn its workers).
            self.privilegedStartService()
        try:
            super().startService()
        except ListenError as e:
            raise self._failed(e) from None

    def _failed(self, reason: ListenError) -> CannotStart:
        """
        Log C{reason}, and make it the one line Python prints when it ends
        the process (twistd re-raises what this returns, after removing its
        pid file and, in daemon mode, reporting it to the waiting parent).
        """
        self._cleanUp()
        command = commandName("uppercase")
        log.error("{command}: {error}", command=command, error=str(reason))
        error = CannotStart(str(reason))
        previous = sys.excepthook

        def oneLine(kind: Any, value: BaseException, traceback: Any) -> None:
            if value is not error:
                previous(kind, value, traceback)
                return
            stderr = sys.__stderr__
            if stderr is not None:
                stderr.write(f"{command}: {error}\n")
                stderr.flush()

        sys.excepthook = oneLine
        return error


def makeFaults(settings: ServerSettings, worker: int | None = None) -> FaultSet:
    """
    The faults C{settings} give, logged when there are any or C{--control}
    may add some: in worker number C{worker} of C{--workers}, with its own
    seed (L{workerSeed}).  An empty set when there are none, so that
    C{--control} (or, in a worker, its supervisor's) can add to it.
    """
    seed = settings.faultSeed
    if worker is not None and seed is not None:
        seed = workerSeed(seed, worker)
    faults = FaultSet(settings.faults, seed)
    if settings.faults or settings.control is not None:
        log.info("faults: {faults}", faults=faults.describe(), seed=faults.seed)
    return faults


def makeFactory(
    settings: ServerSettings, reactor: Any, worker: int | None = None
) -> UppercaseFactory:
    """
    The server's factory, as C{settings} say (in worker number C{worker} of
    C{--workers}, if one).
    """
    return UppercaseFactory(
        reactor,
        logData=settings.logData,
        idleTimeout=settings.idleTimeout,
        maxConnections=settings.maxConnections,
        maxPerIP=settings.maxPerIP,
        maxPending=settings.maxPendingHeaders,
        closeTimeout=settings.shutdownTimeout,
        plain=settings.plain,
        faults=makeFaults(settings, worker),
    )


def makeDatagramServer(settings: ServerSettings, reactor: Any) -> DatagramServer:
    """
    The server's echo over UDP, as C{settings} say.
    """
    return DatagramServer(
        reactor,
        perSource=settings.udpRatePerSource,
        bytesPerSource=settings.udpBytesPerSource,
        total=settings.udpRate,
        plain=settings.plain,
        logData=settings.logData,
    )


def makeService(config: ServerOptions, reactor: Any = None) -> ServerCommand:
    """
    Build the server's service from parsed options; nothing listens until it
    is started.  With C{--workers N} (N > 1) that is a supervisor of N
    workers (L{uppercase.workers.supervisor}); in a worker, the worker's server.
    """
    if reactor is None:
        from twisted.internet import reactor
    settings = config.settings
    spec = WorkerSpec.fromEnvironment()
    if spec is not None:
        return workerCommand(settings, spec, reactor)
    if settings.workers > 1:
        return supervisorCommand(settings, reactor, getattr(config, "parent", None))
    factory = makeFactory(settings, reactor)
    server = UppercaseService(
        factory,
        settings.listen,
        reactor,
        shutdownTimeout=settings.shutdownTimeout,
        metrics=settings.metrics,
        datagrams=makeDatagramServer(settings, reactor),
        control=settings.control,
    )
    return ServerCommand(server, reactor, factory.abortAll)


def workerCommand(settings: ServerSettings, spec: WorkerSpec, reactor: Any) -> ServerCommand:
    """
    A worker's server: on the sockets its supervisor passed, reporting to
    it (L{uppercase.workers.worker}), and stopping when it says
    (L{uppercase.cli.signals.WorkerSignalHandling}).
    """
    factory = makeFactory(settings, reactor, spec.worker)
    server = UppercaseService(
        factory,
        settings.listen,
        reactor,
        shutdownTimeout=settings.shutdownTimeout,
        inherited=spec.sockets,
        datagrams=makeDatagramServer(settings, reactor),
    )

    def retire() -> None:
        log.info(
            "Retiring: accepting no more connections; {count} open {ones} may end by themselves "
            "within {timeout:g} s",
            count=len(factory.connections),
            ones="one" if len(factory.connections) == 1 else "ones",
            timeout=settings.shutdownTimeout,
        )
        server.stopListening()
        waiting = factory.allClosed()
        waiting.addTimeout(settings.shutdownTimeout, reactor)
        waiting.addBoth(lambda _: reactor.stop())

    control = WorkerControl(
        spec,
        factory,
        reactor,
        lambda fd, f: reactor.adoptStreamConnection(fd, socket.AF_UNIX, f),
        retire,
        reactor.stop,
        factory.abortAll,
        datagrams=server.datagrams.counts,
        replaceFaults=lambda texts: replaceFaults(factory.faults, texts),
    )
    command = ServerCommand(server, reactor, factory.abortAll, signals=WorkerSignalHandling)
    control.setServiceParent(command)
    stopping = command.stopService

    def stopThenReport() -> Any:
        def report(result: object) -> object:
            control.finalReport()
            return result

        return stopping().addBoth(report)

    command.stopService = stopThenReport  # type: ignore[method-assign]
    return command


def supervisorCommand(settings: ServerSettings, reactor: Any, twistd: Any) -> ServerCommand:
    """
    A supervisor of C{settings.workers} workers, and its metrics site.
    """
    # Only with --workers: a single process loads none of the supervisor.
    from uppercase.cli.exitstatus import exitWithStatusAtExit
    from uppercase.workers.supervisor import Supervisor, workerShare

    count = settings.workers
    share = dataclasses.replace(
        settings,
        maxConnections=workerShare(settings.maxConnections, count),
        maxPendingHeaders=workerShare(settings.maxPendingHeaders, count),
        udpRate=workerShare(settings.udpRate, count),
        workers=1,
        metrics=None,
        control=None,
    )
    if settings.faults or settings.control is not None:
        # One seed for the whole server, logged; each worker derives its own
        # (for the faults --control adds later too).
        faults = FaultSet(settings.faults, settings.faultSeed)
        log.info("faults: {faults}", faults=faults.describe(), seed=faults.seed)
        settings = dataclasses.replace(settings, faultSeed=faults.seed)
        share = dataclasses.replace(share, faultSeed=faults.seed)
    workerArgs = share.toArgv()
    for description in settings.listen:
        workerArgs += ["--listen", description]
    for fault in settings.faults:
        workerArgs += ["--fault", fault.describe()]
    if not settings.logData:
        workerArgs.append("--quiet")
    if settings.plain:
        workerArgs.append("--plain")
    relayEvents = relayKind(twistd)
    logger = twistd.get("logger") if twistd is not None else None
    json = relayEvents is not None or logger in (jsonlog.stdout, "uppercase.jsonlog.stdout")
    twistdArgs = [f"--logger=uppercase.{'jsonlog' if json else 'textlog'}.worker"]
    name = reactorName(reactor)
    if name is not None:
        twistdArgs.append(f"--reactor={name}")
    supervisor = Supervisor(
        settings.listen,
        count,
        reactor,
        workerArgs,
        twistdArgs,
        shutdownTimeout=settings.shutdownTimeout,
        onGiveUp=lambda why: giveUp(reactor, exitWithStatusAtExit),
        relayEvents=relayEvents,
    )
    command = ServerCommand(
        supervisor,
        reactor,
        supervisor.cutShort,
        {"SIGHUP": supervisor.reload},
        cleanUp=supervisor.closeSockets,
    )
    if settings.metrics is not None:
        # Only with --metrics: it loads prometheus_client and twisted.web.
        from uppercase.server._metrics import (
            METRICS_ALPN,
            DatagramCollector,
            FaultCollector,
            metricsFactory,
        )
        from uppercase.server._service import NamedListener
        from uppercase.workers.metrics import WorkerCollector

        site = metricsFactory(
            supervisor.totals,
            reactor,
            collectors=[
                WorkerCollector(supervisor),
                DatagramCollector(supervisor.totals.datagramCounts),
                FaultCollector(supervisor.totals.faultCounts),
            ],
        )
        NamedListener(
            settings.metrics, site, reactor, protocols=METRICS_ALPN, purpose="metrics"
        ).setServiceParent(command)
    if settings.control is not None:
        serveControl(settings, supervisor, reactor, command)
    return command


def serveControl(settings: ServerSettings, supervisor: Any, reactor: Any, command: Any) -> None:
    """
    Serve C{--control} from the supervisor: its own list of the faults
    (the ones the workers were started with, then each change), every
    change passed on to every worker (L{uppercase.workers.supervisor.Supervisor.setFaults}).
    """
    from uppercase.server._control import CONTROL_ALPN, FaultControl, controlFactory
    from uppercase.server._faults import FaultSet
    from uppercase.server._service import NamedListener

    # The supervisor's own list, with the seed it gave the workers.
    control = FaultControl(
        FaultSet(seed=settings.faultSeed), onChange=supervisor.setFaults, clock=reactor
    )
    control.load(spec.describe() for spec in settings.faults)
    assert settings.control is not None
    NamedListener(
        settings.control,
        controlFactory(control, reactor),
        reactor,
        protocols=CONTROL_ALPN,
        purpose="control",
    ).setServiceParent(command)


def relayKind(runner: Any) -> str | None:
    """
    How a supervisor relays its workers' log lines under C{runner}'s
    options (C{twistd}'s or C{twist}'s): L{None} when it logs through
    uppercase's own observers, which write the lines as they are; otherwise,
    as events, C{"json"} for C{twist}'s JSON log and C{"text"} for any
    other observer (C{twist}'s text, C{--syslog}, another C{--logger}).
    """
    from twisted.logger import jsonFileLogObserver
    from twisted.python.reflect import namedAny

    if runner is None:
        return "text"
    if "fileLogObserverFactory" in runner:  # twist
        return "json" if runner["fileLogObserverFactory"] is jsonFileLogObserver else "text"
    logger = runner.get("logger")
    if isinstance(logger, str):  # twistd resolves it after its subcommand's options
        logger = namedAny(logger)
    if logger in (jsonlog.stdout, textlog.stdout, textlog.logfile):
        return None
    return "text"


def giveUp(reactor: Any, exitWith: Callable[[int], None]) -> None:
    """
    End the process with status 1 (no worker could start).
    """
    exitWith(1)
    if reactor.running:
        reactor.stop()


def reactorName(reactor: Any) -> str | None:
    """
    The name C{twistd --reactor} knows C{reactor}'s kind by, if any.
    """
    from twisted.application.reactors import getReactorTypes

    module = type(reactor).__module__
    for kind in getReactorTypes():
        if getattr(kind, "moduleName", None) == module:
            return str(kind.shortName)
    return None
