"""A worker's side of the control connection, in memory."""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from uppercase._worker import REPORT_INTERVAL, WorkerControl, WorkerSpec
from uppercase.server import UppercaseFactory
from uppercase.testing import StreamTransport, connectServer


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
        spec = WorkerSpec(2, (4,), 3)
        self.control = WorkerControl(
            spec,
            self.factory,
            self.clock,
            self.adopt,
            lambda: self.retired.append(1),
            lambda: self.stopped.append(1),
            self.aborted.append,
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
            },
        )
        self.assertEqual(self.closed, [3])

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
