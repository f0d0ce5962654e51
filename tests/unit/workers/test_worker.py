"""A worker's side of the control connection, in memory."""

from __future__ import annotations

import io
import json
import os
import sys
from typing import Any

from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from uppercase.echo import DatagramCounts
from uppercase.server import UppercaseFactory
from uppercase.server._faults import FaultSet, parseFault
from uppercase.server._logbudget import CHANGES_PER_SECOND, WINDOW
from uppercase.testing import StreamTransport, connectServer
from uppercase.workers.control import COUNTS
from uppercase.workers.worker import (
    FAULTS_LINE,
    REPORT_INTERVAL,
    WORKER_ENV,
    WorkerControl,
    WorkerSpec,
    counts,
    describeFaults,
    replaceFaults,
)


class ControlTests(SynchronousTestCase):
    """
    The worker reports to its supervisor and obeys it.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.factory = UppercaseFactory(self.clock, logData=False, idleTimeout=0)
        self.retired: list[int] = []
        self.stopped: list[int] = []
        self.aborted: list[str] = []
        self.transport = StreamTransport()
        self.closed: list[int] = []
        self.datagrams = DatagramCounts()
        spec = WorkerSpec(2, (4,), 3)
        self.control = WorkerControl(
            spec,
            self.factory,
            self.clock,
            self.adopt,
            lambda: self.retired.append(1),
            lambda: self.stopped.append(1),
            self.aborted.append,
            datagrams=self.datagrams,
            replaceFaults=lambda specs: replaceFaults(self.factory.faults, specs),
        )
        self.patch(os, "close", self.closed.append)
        self.patch(os, "set_blocking", lambda fd, flag: None)
        self.control.startService()

    def adopt(self, fd: int, factory: Any) -> None:
        self.transport.connect(factory.buildProtocol(None))

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.transport.value().splitlines()]

    def test_readyThenCounts(self) -> None:
        """
        On connecting it says it is ready (with its pid); every second it
        sends its counts; the control descriptor it adopted is closed.
        """
        _, client = connectServer(self.factory)
        client.receive(b"abc")
        self.clock.advance(REPORT_INTERVAL)
        ready, counts = self.messages()
        self.assertEqual(ready["type"], "ready")
        self.assertEqual(
            counts,
            {
                "type": "counts",
                "accepted": 1,
                "active": 1,
                "rejected": 0,
                "idleClosed": 0,
                "received": 3,
                "sent": 3,
                **{name: 0 for name in COUNTS if name.startswith("udp:")},
                **{name: 0 for name in COUNTS if name.startswith("fault:")},
            },
        )
        self.assertEqual(self.closed, [3])

    def test_datagramCountsReported(self) -> None:
        """
        A worker's reports carry its datagram echo's counts, each as
        C{udp:NAME}, drops by reason included.
        """
        self.datagrams.received = 7
        self.datagrams.sentBytes = 30
        self.datagrams.dropped["source-rate"] = 2
        self.clock.advance(REPORT_INTERVAL)
        report = self.messages()[-1]
        self.assertEqual(
            (report["udp:received"], report["udp:sentBytes"], report["udp:dropped:source-rate"]),
            (7, 30, 2),
        )

    def test_countsAreTheLinesCounts(self) -> None:
        """
        A worker reports exactly the counts the control line carries.
        """
        self.assertEqual(tuple(counts(self.factory)), COUNTS)

    def test_faults(self) -> None:
        """
        The supervisor's C{faults} makes its specs the factory's faults, in
        place of the ones before, and the worker says what they are now.
        """
        self.factory.faults.add(parseFault("refuse"))
        with capturedLogs() as events:
            self.transport.receive(
                b'{"command": "faults", "specs": ["latency,delay=20ms", "close,after=10KB"]}\n'
            )
        self.assertEqual(
            [spec for _, spec in self.factory.faults.list()],
            [parseFault("latency,delay=20ms"), parseFault("close,after=10KB")],
        )
        self.assertEqual(
            [formatEvent(e) for e in events], ["Faults now: latency,delay=20ms; close,after=10KB"]
        )

    def test_manyFaultsOneShortLine(self) -> None:
        """
        However many and long the faults, the line shows at most
        L{FAULTS_LINE} characters of them (a first spec longer than that cut
        and marked) and counts the rest; specs that fit are shown whole.
        """
        specs = [f"latency,delay={n}ms,on=/{'x' * 480}" for n in range(64)]
        with capturedLogs() as events:
            self.transport.receive(
                json.dumps({"command": "faults", "specs": specs}).encode() + b"\n"
            )
        self.assertEqual(len(self.factory.faults.list()), 64)
        [line] = [formatEvent(e) for e in events]
        cut = specs[0][: FAULTS_LINE - 1] + "\N{HORIZONTAL ELLIPSIS}"
        self.assertEqual(line, f"Faults now: {cut}; and 63 more (64 in all)")
        self.assertEqual(
            describeFaults(["refuse"] * 3, limit=16), "refuse; refuse; and 1 more (3 in all)"
        )
        self.assertEqual(
            describeFaults(["refuse", "x" * 20], limit=16), "refuse; and 1 more (2 in all)"
        )

    def test_faultsLinesBounded(self) -> None:
        """
        However fast the supervisor passes changes on, the worker logs
        L{CHANGES_PER_SECOND} a second one by one, then, when the second
        ends, how its faults stand after the last, with the count; every
        change is applied.
        """
        with capturedLogs() as events:
            for n in range(15):
                self.transport.receive(
                    json.dumps({"command": "faults", "specs": [f"latency,delay={n}ms"]}).encode()
                    + b"\n"
                )
            self.assertEqual(len(events), CHANGES_PER_SECOND)
            self.clock.advance(WINDOW)
        self.assertEqual(
            formatEvent(events[-1]),
            "Faults now: latency,delay=14ms (the last of 5 changes in the last second not logged"
            " one by one, past 10 a second)",
        )
        self.assertEqual(len(events), CHANGES_PER_SECOND + 1)
        self.assertEqual(
            [spec for _, spec in self.factory.faults.list()], [parseFault("latency,delay=14ms")]
        )

    def test_noFaults(self) -> None:
        """
        An empty C{faults} leaves no fault, and says so.
        """
        self.factory.faults.add(parseFault("refuse"))
        with capturedLogs() as events:
            self.transport.receive(b'{"command": "faults", "specs": []}\n')
        self.assertEqual(self.factory.faults.list(), [])
        self.assertEqual([formatEvent(e) for e in events], ["Faults now: none"])

    def test_retire(self) -> None:
        """
        The C{retire} command calls the retirement.
        """
        self.transport.receive(b'{"command": "retire"}\n')
        self.assertEqual(self.retired, [1])

    def test_abortWhileStopping(self) -> None:
        """
        The C{abort} command (the supervisor got a second stop signal)
        aborts the connections the stop waits for, saying why; the stop is
        already under way, so it is not started again.
        """
        self.control.stopService()
        self.transport.receive(b'{"command": "abort", "why": "on a second SIGINT"}\n')
        self.assertEqual((self.aborted, self.stopped), (["on a second SIGINT"], []))

    def test_abortBeforeStopping(self) -> None:
        """
        An C{abort} that arrives before the worker stops starts the stop
        too.
        """
        self.transport.receive(b'{"command": "abort"}\n')
        self.assertEqual(self.stopped, [1])
        self.assertEqual(self.aborted, ["on the supervisor's request"])

    def test_supervisorGone(self) -> None:
        """
        When the control connection ends, the worker stops.
        """
        self.transport.reset()
        self.assertEqual(self.stopped, [1])

    def test_noReportAfterStop(self) -> None:
        """
        Once stopping, no report is scheduled any more.
        """
        self.control.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_specRoundTrip(self) -> None:
        """
        The spec survives the environment variable.
        """
        spec = WorkerSpec(3, (4, 5), 3)
        self.assertEqual(
            WorkerSpec.fromEnvironment({"UPPERCASE_WORKER": spec.toEnvironment()}), spec
        )
        self.assertIsNone(WorkerSpec.fromEnvironment({}))

    def test_label(self) -> None:
        """
        A worker's label is its slot for the first process started in the
        slot, then slot.generation, so that the old and the new worker of a
        reload are told apart; it survives the environment variable.
        """
        first, third = WorkerSpec(3, (4,), 3), WorkerSpec(3, (4,), 3, generation=3)
        self.assertEqual([first.label, third.label], ["3", "3.3"])
        again = WorkerSpec.fromEnvironment({"UPPERCASE_WORKER": third.toEnvironment()})
        assert again is not None
        self.assertEqual(again.label, "3.3")

    def test_logsSayTheLabel(self) -> None:
        """
        A worker's text log lines start with C{[worker LABEL]}; its JSON log
        lines have that label as their C{worker} field.
        """
        from uppercase import jsonlog, textlog

        spec = WorkerSpec(2, (4,), 3, generation=5)
        os.environ[WORKER_ENV] = spec.toEnvironment()
        self.addCleanup(os.environ.pop, WORKER_ENV, None)
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        # A warning: written and flushed at once, nothing scheduled.
        event = {"log_format": "hello", "log_time": 0.0, "log_namespace": "test"}
        event["log_level"] = LogLevel.warn
        for observer in (textlog.worker(), jsonlog.worker()):
            observer(dict(event))
        text, line = out.getvalue().splitlines()
        self.assertIn(" [worker 2.5] [test#warn] hello", text)
        self.assertEqual(json.loads(line)["worker"], "2.5")


class ReplaceFaultsTests(SynchronousTestCase):
    """
    L{replaceFaults}: a worker's faults made the supervisor's.
    """

    def test_badSpecLeftOut(self) -> None:
        """
        A spec that does not parse is left out, with a warning; the others
        are kept.
        """
        faults = FaultSet(seed=1)
        with capturedLogs() as events:
            replaceFaults(faults, ["", "latency,delay=20ms"])
        self.assertEqual([spec for _, spec in faults.list()], [parseFault("latency,delay=20ms")])
        self.assertEqual([e["log_level"] for e in events], [LogLevel.warn])
        self.assertIn("left out", formatEvent(events[0]))
