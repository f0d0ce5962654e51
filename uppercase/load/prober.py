"""
C{twistd uppercase-client} in load mode: the load run as a service.  With
C{--rate R --count 0} it is a synthetic prober of a path: it runs until
stopped, reconnects with backoff, logs a line every L{LOG_EVERY} seconds
(and every wrong reply at once), and with C{--metrics ENDPOINT} serves
Prometheus metrics from the same reactor.  A run that ends by itself stops
the reactor, with exit status 1 if it failed.
"""

from __future__ import annotations

import signal
from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from uppercase.client._connect import connectWithin
from uppercase.client._settings import ClientSettings
from uppercase.load.datagram import datagramConnect
from uppercase.load.metrics import clientMetricsFactory
from uppercase.load.report import describeLatency, progressLine, summaryLines
from uppercase.load.result import RunObserver, RunResult, RunView, Snapshot
from uppercase.load.run import SPIN, Connect, LoadRun
from uppercase.server._service import ListenError, reasonOf

__all__ = ["LOG_EVERY", "LoadService", "LogLoadReport"]

log = Logger()

LOG_EVERY = 10
"""Seconds between progress lines in the log."""


class LogLoadReport(RunObserver):
    """
    The run's progress and summary in the log, with their figures as
    fields.
    """

    def __init__(self, every: int = LOG_EVERY) -> None:
        self._every = every
        self._intervals = 0
        self._stream = False

    def started(self, run: RunView) -> None:
        self._stream = run.settings.stream
        log.info("Load run: {description}", description=run.describe())

    def interval(self, snapshot: Snapshot) -> None:
        self._intervals += 1
        if self._intervals % self._every:
            return
        log.info(
            "{progress}",
            progress=progressLine(snapshot, self._stream),
            verified=snapshot.verified,
            failed=snapshot.failed,
            errors=snapshot.errorsByKind,
            latency_ms=snapshot.latency,
        )

    def finished(self, result: RunResult) -> None:
        for line in summaryLines(result):
            log.info("{line}", line=line)
        log.info(
            "Load run over: {verified:,} verified, {failed:,} failed, latency {latency}",
            verified=result.verified,
            failed=result.failed,
            latency=describeLatency(result.latency),
            latency_ms=result.latency,
            errors=result.errors,
        )


class LoadService(Service):
    """
    Run a L{LoadRun} (reconnecting) from C{startService}; stop it, closing
    its connections, from C{stopService}.

    @ivar run: the run, once started.
    """

    def __init__(
        self,
        settings: ClientSettings,
        endpoint: IStreamClientEndpoint | None,
        reactor: Any,
        exitStatus: Callable[[int], None],
        spin: float = SPIN,
    ) -> None:
        self.settings = settings
        self._endpoint = endpoint
        self._reactor = reactor
        self._exitStatus = exitStatus
        self._spin = spin
        self.run: LoadRun | None = None
        self._port: Any = None
        self._ended = False

    def startService(self) -> None:
        super().startService()
        settings = self.settings
        reactor = self._reactor

        endpoint = self._endpoint
        connect: Connect
        if endpoint is None:  # udp: (L{uppercase.load.datagram})
            connect = datagramConnect(reactor, settings.connect)
        else:

            def connect(factory: IProtocolFactory) -> Deferred[Any]:
                return connectWithin(endpoint, factory, settings.timeout, reactor)

        self.run = LoadRun(
            settings, reactor, connect, LogLoadReport(), reconnect=True, spin=self._spin
        )
        if settings.metrics:
            listening = serverFromString(reactor, settings.metrics).listen(
                clientMetricsFactory(self.run, reactor)
            )
            listening.addCallbacks(self._listening, self._cannotListen)
        if not self._ended:
            self.run.start().addCallback(self._over)

    def _listening(self, port: Any) -> None:
        self._port = port
        log.info("Serving the client's metrics on {endpoint}", endpoint=self.settings.metrics)

    def _cannotListen(self, failure: Failure) -> None:
        self._give_up(str(ListenError(self.settings.metrics, reasonOf(failure.value), "metrics")))

    def _give_up(self, reason: str) -> None:
        if self._ended:
            return
        log.critical("Stopping: {reason}", reason=reason)
        self._exitStatus(1)
        self._end()

    def _over(self, result: RunResult) -> None:
        if self._ended:
            return
        if result.failure is not None:
            self._give_up(result.failure)
            return
        self._end()

    def _end(self) -> None:
        self._ended = True
        if self.run is not None:
            self.run.interrupt(signal.SIGTERM)
        if self._reactor.running:
            self._reactor.stop()

    def stopService(self) -> Deferred[None]:
        """
        Stop the run (its summary is logged) and the metrics listener.
        """
        super().stopService()
        waits: Deferred[Any] = succeed(None)
        if self.run is not None and not self.run.done.called:
            self._ended = True
            self.run.interrupt(signal.SIGTERM)
            waits = self.run.done
        if self._port is not None:
            port, self._port = self._port, None
            waits.addBoth(lambda _: port.stopListening())
        return waits.addBoth(lambda _: None)
