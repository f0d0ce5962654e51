"""
Signals, as operators of twistd and of the servers they know expect them.

  - C{SIGTERM}, C{SIGINT}: the reactor's own handlers stop the server
    gracefully (the drain).  A second one during the drain cuts it short:
    the remaining connections are aborted, in one log line, and the process
    exits (no C{ReactorNotRunning} traceback).
  - C{SIGUSR1}: reopen the log file if something moved it (logrotate), or
    rotate it as twistd does; logged either way.
  - C{SIGHUP} (a closed terminal, or a reload request) and C{SIGUSR2}: logged,
    and otherwise ignored, where by default they would kill the process and
    drop every connection -- unless the command gives them a meaning
    (C{--workers} makes C{SIGHUP} a reload).

A worker of C{--workers N} handles C{SIGINT} and C{SIGTERM} its own way
(L{WorkerSignalHandling}): its supervisor decides.

The handlers are installed once the reactor runs (after its own), by a
service that only the command-line layer adds: a library embedding
L{uppercase.server._service.UppercaseService} keeps its own signal handling.
"""

from __future__ import annotations

import signal
from typing import Any, Callable, Mapping

from twisted.application.service import Service
from twisted.logger import Logger

log = Logger()

IGNORED = ("SIGHUP", "SIGUSR2")

REACTOR_HANDLERS = {"SIGINT": "sigInt", "SIGTERM": "sigTerm"}
"""The reactor's public handlers for the stopping signals (its own, which
log the signal, stop, and have the runner exit by that signal)."""


class SignalHandling(Service):
    """
    Install the handlers described in the module docstring when the reactor
    starts running.

    @param reactor: the reactor (for C{callWhenRunning} and
        C{callFromThread}).
    @param cutShort: called (in the reactor thread) on a second stopping
        signal: abort what the graceful stop is still waiting for.
    @param reopenLogs: called on C{SIGUSR1}; returns what it did, one entry
        per log file (empty when logging to standard output).
    @param handlers: what to call, by signal name (C{"SIGHUP"},
        C{"SIGUSR2"}), instead of logging the signal as ignored.
    """

    def __init__(
        self,
        reactor: Any,
        cutShort: Callable[[str], None],
        reopenLogs: Callable[[], list[str]],
        handlers: Mapping[str, Callable[[], object]] | None = None,
    ) -> None:
        self._reactor = reactor
        self._cutShort = cutShort
        self._reopenLogs = reopenLogs
        self._handlers = dict(handlers or {})
        self._stopping = False
        self._installed: dict[int, Any] = {}

    def startService(self) -> None:
        super().startService()
        self._reactor.callWhenRunning(self.install)

    def stopService(self) -> Any:
        # A stop that began without a signal (reactor.stop() from code)
        # still makes the next signal a second one.
        self._stopping = True
        return super().stopService()

    stopSignals: tuple[str, ...] = ("SIGINT", "SIGTERM")
    """The signals that stop the process gracefully."""

    ignored: tuple[str, ...] = IGNORED
    """The signals logged and otherwise ignored (unless C{handlers} names
    them)."""

    def install(self) -> None:
        """
        Install the handlers (chaining the L{stopSignals} to the ones
        installed before, normally the reactor's).
        """
        for name in self.stopSignals:
            number = getattr(signal, name)
            previous = signal.getsignal(number)
            self._set(number, self._stopHandler(previous))
        for name in self.ignored:
            number = getattr(signal, name, None)
            if number is not None:
                self._set(number, self._deferTo(self._other))
        if hasattr(signal, "SIGUSR1"):
            self._set(signal.SIGUSR1, self._deferTo(self._reopen))

    def _set(self, number: int, handler: Any) -> None:
        self._installed[number] = signal.signal(number, handler)

    def uninstall(self) -> None:
        """
        Put back the handlers that were there before L{install}.
        """
        for number, previous in self._installed.items():
            signal.signal(number, previous)
        self._installed.clear()

    def _deferTo(self, call: Callable[[int], None]) -> Callable[[int, Any], None]:
        def handler(number: int, frame: Any) -> None:
            self._reactor.callFromThread(call, number)

        return handler

    def _stopHandler(self, previous: Any) -> Callable[[int, Any], None]:
        def handler(number: int, frame: Any) -> None:
            if self._stopping or not callable(previous):
                self._reactor.callFromThread(self._again, number)
                return
            self._stopping = True
            previous(number, frame)

        return handler

    def _again(self, number: int) -> None:
        name = signal.Signals(number).name
        if not self._stopping:
            # No stop handler was there to chain to (the reactor leaves a
            # SIGINT that was ignored at start alone): start the stop here,
            # with the reactor's own handler where it has one, which also
            # makes twistd and twist end the process by the signal.
            self._stopping = True
            own = getattr(self._reactor, REACTOR_HANDLERS.get(name, ""), None)
            if callable(own):
                own(number, None)
            else:
                log.info("Received {signal}, shutting down.", signal=name)
                self._reactor.stop()
            return
        self._cutShort(f"on a second {name}")

    def _other(self, number: int) -> None:
        name = signal.Signals(number).name
        handler = self._handlers.get(name)
        if handler is not None:
            log.info("Received {signal}", signal=name)
            handler()
            return
        log.info("Received {signal}: ignored{why}", signal=name, why=self._whyIgnored(name))

    def _whyIgnored(self, name: str) -> str:
        return ""

    def _reopen(self, number: int) -> None:
        done = self._reopenLogs()
        if done:
            for what in done:
                log.info("Received SIGUSR1: {done}", done=what, signal="SIGUSR1")
        else:
            log.info(
                "Received SIGUSR1: logging to standard output, no log file to reopen",
                signal="SIGUSR1",
            )


class WorkerSignalHandling(SignalHandling):
    """
    A worker's signal handling (L{uppercase.workers.worker}): its supervisor
    decides when it stops, and whether the stop is cut short.

    A signal sent to the whole process group -- Ctrl-C in a terminal, or
    systemd stopping a unit with C{KillMode=control-group} -- reaches every
    worker as well as the supervisor, which then sends each worker a
    C{SIGTERM} of its own.  So a worker cannot take a second stop signal
    for a request to cut its drain short; only its supervisor asks for that
    (over the control connection, on the supervisor's own second signal):

      - C{SIGINT}: logged and ignored (the supervisor, which got it too, stops
        the workers);
      - C{SIGTERM}: starts the graceful stop; any more are logged and
        ignored;
      - C{SIGHUP}, C{SIGUSR2}, C{SIGUSR1}: as for a server alone.

    The supervisor starts its workers with C{SIGINT} ignored already, so
    that it is ignored before these handlers are installed too.
    """

    stopSignals = ("SIGTERM",)
    ignored = ("SIGINT", *IGNORED)

    def _whyIgnored(self, name: str) -> str:
        if name == "SIGINT":
            return " (the supervisor stops its workers)"
        return ""

    def _again(self, number: int) -> None:
        if not self._stopping:
            super()._again(number)
            return
        log.info(
            "Received {signal}: already stopping (only the supervisor cuts a worker's stop short)",
            signal=signal.Signals(number).name,
        )
