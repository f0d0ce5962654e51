"""
C{twistd uppercase} and C{twist uppercase}: the server's options, and the
service they build (wiring only: the service itself is
L{uppercase.service.UppercaseService}).
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.python import usage

from ._endpoints import PROXY_PREFIX, withDefaultBacklog
from ._options import (
    checkSeconds,
    checkWholeNumber,
    commandName,
    oneLineErrors,
    preferFastTextLog,
)
from ._signals import SignalHandling
from .server import UppercaseFactory
from .service import ListenError, UppercaseService

log = Logger()

DEFAULT_LISTEN = "tcp:9527"
"""Port 9527 on all interfaces, as the reference (with the default backlog,
see L{uppercase._endpoints.DEFAULT_BACKLOG})."""


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
        "certKey=cert.pem, systemd:domain=INET6:index=0, haproxy:tcp:9527); "
        "TCP, TLS and UNIX listeners get a backlog of 511 unless they set one."
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
            "Most connections open at once (0: as many as descriptors allow).",
        ],
        [
            "max-pending-headers",
            None,
            "1000",
            "Most connections to haproxy: listeners still waiting for their PROXY "
            "header at once, apart from --max-connections (0: as many as descriptors allow).",
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
            "How long a connection the server closes (on SIGTERM/SIGINT, or for being "
            "idle) may take to finish gracefully before it is aborted.",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    def opt_listen(self, description: str) -> None:
        """
        Listen on ENDPOINT (may be given several times) [default: tcp:9527].
        """
        self["listen"].append(description)

    opt_l = opt_listen

    def postOptions(self) -> None:
        preferFastTextLog(self)
        checkSeconds(self, "idle-timeout")
        checkSeconds(self, "shutdown-timeout")
        checkWholeNumber(self, "max-connections")
        checkWholeNumber(self, "max-per-ip")
        checkWholeNumber(self, "max-pending-headers")
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
    endpoint = withDefaultBacklog(description)
    if option == "--listen" and endpoint.startswith(PROXY_PREFIX):
        endpoint = endpoint[len(PROXY_PREFIX) :]
    try:
        serverFromString(reactor, endpoint)
    except Exception as e:
        raise usage.UsageError(f"{option} {description!r} is not a valid endpoint: {e}") from None


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
    expect (L{uppercase._signals}), and a failure to listen reported as one
    line on standard error (the log has it too) and a non-zero exit status,
    under C{twistd -n}, C{twistd} (through its start-up report) and C{twist}.
    """

    def __init__(self, server: UppercaseService, reactor: Any) -> None:
        super().__init__()
        from . import textlog

        self.server = server
        server.setServiceParent(self)
        SignalHandling(reactor, server.factory.abortAll, textlog.reopenLogFiles).setServiceParent(
            self
        )

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except ListenError as e:
            raise self._failed(e) from None

    def startService(self) -> None:
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


def makeService(config: usage.Options, reactor: Any = None) -> ServerCommand:
    """
    Build the server's service from parsed options; nothing listens until it
    is started.
    """
    if reactor is None:
        from twisted.internet import reactor
    factory = UppercaseFactory(
        reactor,
        logData=not config["quiet"],
        idleTimeout=config["idle-timeout"],
        maxConnections=config["max-connections"],
        maxPerIP=config["max-per-ip"],
        maxPending=config["max-pending-headers"],
        closeTimeout=config["shutdown-timeout"],
    )
    server = UppercaseService(
        factory,
        config["listen"],
        reactor,
        shutdownTimeout=config["shutdown-timeout"],
        metrics=config["metrics"],
    )
    return ServerCommand(server, reactor)
