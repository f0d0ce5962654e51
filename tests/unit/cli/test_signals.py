"""Signal handling for the command-line layer, with a fake reactor."""

from __future__ import annotations

import signal
from typing import Any, Callable, Sequence

from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from uppercase.cli.signals import SignalHandling, WorkerSignalHandling


class FakeReactor:
    """
    What L{SignalHandling} needs of a reactor: C{callWhenRunning},
    C{callFromThread} (run at once here) and C{stop}.
    """

    def __init__(self) -> None:
        self.whenRunning: list[Callable[[], None]] = []
        self.stopped = 0

    def callWhenRunning(self, f: Callable[..., Any], *args: Any) -> None:
        self.whenRunning.append(lambda: f(*args))

    def callFromThread(self, f: Callable[..., Any], *args: Any) -> None:
        f(*args)

    def stop(self) -> None:
        self.stopped += 1


class SignalTests(SynchronousTestCase):
    """
    Handlers chain to the reactor's for the first stop signal, cut the
    drain short on the second, and keep other signals from killing the
    process.
    """

    def setUp(self) -> None:
        self.reactor = FakeReactor()
        self.cut: list[str] = []
        self.logFiles: list[str] = []
        self.reactorStops: list[int] = []
        for number in (signal.SIGINT, signal.SIGTERM):
            previous = signal.signal(number, self.reactorHandler)
            self.addCleanup(signal.signal, number, previous)
        for number in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            self.addCleanup(signal.signal, number, signal.getsignal(number))
        self.handling = SignalHandling(self.reactor, self.cut.append, lambda: self.logFiles)
        self.handling.startService()
        for call in self.reactor.whenRunning:
            call()
        self.addCleanup(self.handling.uninstall)

    def reactorHandler(self, number: int, frame: Any) -> None:
        """
        Stands for the reactor's own handler: starts a stop.
        """
        self.reactorStops.append(number)

    def deliver(self, number: int) -> None:
        """
        Call the handler installed for C{number}, as the signal would.
        """
        handler = signal.getsignal(number)
        assert callable(handler)
        handler(number, None)

    def test_installedOnlyOnceRunning(self) -> None:
        """
        Nothing is installed before the reactor runs (its own handlers come
        first, and are chained to).
        """
        self.handling.uninstall()
        before = {n: signal.getsignal(n) for n in (signal.SIGHUP, signal.SIGTERM)}
        reactor = FakeReactor()
        SignalHandling(reactor, self.cut.append, list).startService()
        self.assertEqual({n: signal.getsignal(n) for n in before}, before)
        self.assertEqual(len(reactor.whenRunning), 1)

    def test_firstStopSignalChains(self) -> None:
        """
        The first SIGTERM goes to the handler that was there (the reactor's
        graceful stop); nothing is cut short.
        """
        self.deliver(signal.SIGTERM)
        self.assertEqual(self.reactorStops, [signal.SIGTERM])
        self.assertEqual(self.cut, [])

    def test_secondStopSignalCutsShort(self) -> None:
        """
        A second SIGINT during the drain aborts what is left, once, and is
        not passed to the reactor (whose second stop would raise
        C{ReactorNotRunning}).
        """
        self.deliver(signal.SIGINT)
        self.deliver(signal.SIGINT)
        self.assertEqual(self.reactorStops, [signal.SIGINT])
        self.assertEqual(self.cut, ["on a second SIGINT"])

    def test_signalAfterStopFromCode(self) -> None:
        """
        A stop that began without a signal (the service being stopped) makes
        the first signal a second one.
        """
        self.handling.stopService()
        self.deliver(signal.SIGTERM)
        self.assertEqual(self.reactorStops, [])
        self.assertEqual(self.cut, ["on a second SIGTERM"])

    def test_hangupAndUser2Ignored(self) -> None:
        """
        SIGHUP (a closed terminal) and SIGUSR2 are logged and otherwise
        ignored: no stop.
        """
        with capturedLogs() as events:
            self.deliver(signal.SIGHUP)
            self.deliver(signal.SIGUSR2)
        self.assertEqual(
            [e["log_format"].format(**e) for e in events],
            ["Received SIGHUP: ignored", "Received SIGUSR2: ignored"],
        )
        self.assertEqual((self.reactorStops, self.cut), ([], []))

    def test_user1ReopensLogs(self) -> None:
        """
        SIGUSR1 reopens the log files and logs what it did; logging to
        standard output, it says there is nothing to reopen.
        """
        with capturedLogs() as events:
            self.deliver(signal.SIGUSR1)
            self.logFiles.append("reopened /var/log/u.log")
            self.deliver(signal.SIGUSR1)
        self.assertEqual(
            [e["log_format"].format(**e) for e in events],
            [
                "Received SIGUSR1: logging to standard output, no log file to reopen",
                "Received SIGUSR1: reopened /var/log/u.log",
            ],
        )

    def test_reloadHook(self) -> None:
        """
        With a handler for it, SIGHUP calls it instead of being ignored.
        """
        reloads: list[int] = []
        handling = SignalHandling(
            self.reactor, self.cut.append, list, {"SIGHUP": lambda: reloads.append(1)}
        )
        handling.install()
        self.addCleanup(handling.uninstall)
        self.deliver(signal.SIGHUP)
        self.assertEqual(reloads, [1])


class WorkerSignalTests(SynchronousTestCase):
    """
    A worker's handlers: its supervisor decides when it stops, so a signal
    to the whole process group never cuts its drain short.
    """

    def setUp(self) -> None:
        self.reactor = FakeReactor()
        self.cut: list[str] = []
        self.reactorStops: list[int] = []
        previous = signal.signal(signal.SIGTERM, self.reactorHandler)
        self.addCleanup(signal.signal, signal.SIGTERM, previous)
        # The supervisor starts its workers with SIGINT ignored.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.addCleanup(signal.signal, signal.SIGINT, previous)
        for number in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            self.addCleanup(signal.signal, number, signal.getsignal(number))
        self.handling = WorkerSignalHandling(self.reactor, self.cut.append, list)
        self.handling.startService()
        for call in self.reactor.whenRunning:
            call()
        self.addCleanup(self.handling.uninstall)

    def reactorHandler(self, number: int, frame: Any) -> None:
        self.reactorStops.append(number)

    def deliver(self, number: int) -> None:
        handler = signal.getsignal(number)
        assert callable(handler)
        handler(number, None)

    def messages(self, events: Sequence[dict[str, Any]]) -> list[str]:
        return [e["log_format"].format(**e) for e in events]

    def test_interruptIgnored(self) -> None:
        """
        SIGINT (Ctrl-C reaches the whole process group) is logged and
        ignored, however often it comes: no stop, nothing cut short.
        """
        with capturedLogs() as events:
            self.deliver(signal.SIGINT)
            self.deliver(signal.SIGINT)
        self.assertEqual((self.reactorStops, self.reactor.stopped, self.cut), ([], 0, []))
        self.assertEqual(
            self.messages(events),
            ["Received SIGINT: ignored (the supervisor stops its workers)"] * 2,
        )

    def test_terminateStartsTheStop(self) -> None:
        """
        The first SIGTERM goes to the reactor's handler: the graceful stop.
        """
        self.deliver(signal.SIGTERM)
        self.assertEqual(self.reactorStops, [signal.SIGTERM])

    def test_moreTerminatesDoNotCutShort(self) -> None:
        """
        Further SIGTERMs (the worker's own from the process group, then its
        supervisor's) are logged and change nothing: the drain goes on.
        """
        self.deliver(signal.SIGTERM)
        with capturedLogs() as events:
            self.deliver(signal.SIGTERM)
            self.deliver(signal.SIGTERM)
        self.assertEqual(self.reactorStops, [signal.SIGTERM])
        self.assertEqual(self.cut, [])
        self.assertEqual(
            self.messages(events),
            ["Received SIGTERM: already stopping (only the supervisor cuts a worker's stop short)"]
            * 2,
        )

    def test_terminateAfterStopFromCode(self) -> None:
        """
        A stop that began without a signal (the supervisor gone, or a
        retirement) is not cut short by a SIGTERM either.
        """
        self.handling.stopService()
        self.deliver(signal.SIGTERM)
        self.assertEqual((self.reactorStops, self.cut), ([], []))

    def test_terminateWithoutReactorHandler(self) -> None:
        """
        With no handler to chain to, the first SIGTERM stops the reactor
        itself.
        """
        self.handling.uninstall()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        handling = WorkerSignalHandling(self.reactor, self.cut.append, list)
        handling.install()
        self.addCleanup(handling.uninstall)
        self.deliver(signal.SIGTERM)
        self.deliver(signal.SIGTERM)
        self.assertEqual((self.reactor.stopped, self.cut), (1, []))


class ReactorWithHandlers(FakeReactor):
    """
    A reactor with the public handlers Twisted's have (C{sigInt},
    C{sigTerm}), which record the signal the process should exit by.
    """

    def __init__(self) -> None:
        super().__init__()
        self.handled: list[int] = []

    def sigInt(self, number: int, frame: Any = None) -> None:
        self.handled.append(number)
        self.stop()

    sigTerm = sigInt


class IgnoredAtStartTests(SynchronousTestCase):
    """
    A SIGINT that was ignored at start has no reactor handler to chain to
    (Twisted leaves it alone); it still stops the server, through the
    reactor's own handler, so that the process exits by the signal.
    """

    def setUp(self) -> None:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.addCleanup(signal.signal, signal.SIGINT, previous)
        self.addCleanup(signal.signal, signal.SIGTERM, signal.getsignal(signal.SIGTERM))
        for number in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            self.addCleanup(signal.signal, number, signal.getsignal(number))
        self.cut: list[str] = []

    def start(self, reactor: FakeReactor) -> SignalHandling:
        handling = SignalHandling(reactor, self.cut.append, list)
        handling.install()
        self.addCleanup(handling.uninstall)
        return handling

    def deliver(self, number: int) -> None:
        handler = signal.getsignal(number)
        assert callable(handler)
        handler(number, None)

    def test_reactorHandlerCalled(self) -> None:
        """
        The reactor's C{sigInt} is called once (it logs, stops, and records
        SIGINT as the exit signal); a second SIGINT cuts the drain short.
        """
        reactor = ReactorWithHandlers()
        self.start(reactor)
        self.deliver(signal.SIGINT)
        self.assertEqual((reactor.handled, reactor.stopped), ([signal.SIGINT], 1))
        self.deliver(signal.SIGINT)
        self.assertEqual((reactor.handled, reactor.stopped), ([signal.SIGINT], 1))
        self.assertEqual(self.cut, ["on a second SIGINT"])

    def test_withoutReactorHandler(self) -> None:
        """
        A reactor without such handlers is stopped directly, and the signal
        logged.
        """
        reactor = FakeReactor()
        self.start(reactor)
        with capturedLogs() as events:
            self.deliver(signal.SIGINT)
        self.assertEqual(reactor.stopped, 1)
        self.assertEqual(
            [e["log_format"].format(**e) for e in events], ["Received SIGINT, shutting down."]
        )
