"""
A worker process as the supervisor sees it, on a fake parent: what it tells
the parent, and what it sends down its control line.
"""

from __future__ import annotations

import json

from twisted.internet.error import ProcessDone
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from uppercase.testing import StreamTransport
from uppercase.workers.child import WorkerProcess
from uppercase.workers.control import COUNTS, SupervisorEnd


class Parent:
    """
    A fake supervisor: records what its worker tells it.
    """

    def __init__(self) -> None:
        self.relayed: list[str] = []
        self.errors: list[tuple[str, str]] = []
        self.ready: list[WorkerProcess] = []
        self.ended: list[WorkerProcess] = []

    def relay(self, lines: str) -> None:
        self.relayed.append(lines)

    def relayError(self, worker: str, lines: str) -> None:
        self.errors.append((worker, lines))

    def workerReady(self, worker: WorkerProcess) -> None:
        self.ready.append(worker)

    def workerEnded(self, worker: WorkerProcess, reason: Failure) -> None:
        self.ended.append(worker)


class WorkerProcessTests(SynchronousTestCase):
    """
    L{WorkerProcess} tells its parent through the L{Parent} interface.
    """

    def setUp(self) -> None:
        self.parent = Parent()
        self.worker = WorkerProcess(self.parent, 2, "2.3")
        self.control = StreamTransport()
        self.control.connect(SupervisorEnd(self.worker))

    def test_readyOnce(self) -> None:
        """
        The first C{ready} makes it ready, tells the parent and fires
        L{WorkerProcess.waitReady}; a second one changes nothing.
        """
        waiting = self.worker.waitReady()
        self.control.receive(b'{"type": "ready"}\n{"type": "ready"}\n')
        self.assertEqual(self.parent.ready, [self.worker])
        self.assertIs(self.successResultOf(waiting), self.worker)
        self.assertIs(self.successResultOf(self.worker.waitReady()), self.worker)

    def test_counts(self) -> None:
        """
        Its counts are the latest reported.
        """
        self.control.receive(b'{"type": "counts", "accepted": 1}\n{"type": "counts", "sent": 4}\n')
        self.assertEqual(self.worker.counts, {**dict.fromkeys(COUNTS, 0), "sent": 4})

    def test_commands(self) -> None:
        """
        C{retire} and C{abort} go down its control line; C{retire} marks it
        retiring.
        """
        self.worker.retire()
        self.worker.abort("on a second SIGTERM to the supervisor")
        self.assertTrue(self.worker.retiring)
        self.assertEqual(
            [json.loads(line) for line in self.control.value().splitlines()],
            [
                {"command": "retire"},
                {"command": "abort", "why": "on a second SIGTERM to the supervisor"},
            ],
        )

    def test_controlLost(self) -> None:
        """
        Once its control line is gone, it has none.
        """
        self.assertIsNotNone(self.worker.control)
        self.control.reset()
        self.assertIsNone(self.worker.control)

    def test_endedRelaysTheRest(self) -> None:
        """
        When it ends, the parent gets its unfinished lines (each given an
        end of line), then hears that it ended; L{WorkerProcess.whenEnded}
        fires and a wait for readiness fails.
        """
        waiting = self.worker.waitReady()
        self.worker.childDataReceived(1, b"one\ntw")
        self.worker.childDataReceived(2, b"oops")
        self.worker.processEnded(Failure(ProcessDone(0)))
        self.assertEqual(self.parent.relayed, ["one\n", "tw\n"])
        self.assertEqual(self.parent.errors, [("2.3", "oops\n")])
        self.assertEqual(self.parent.ended, [self.worker])
        self.failureResultOf(waiting, ProcessDone)
        self.successResultOf(self.worker.whenEnded)
