"""
Specification of L{uppercase.server._logbudget}: the server's per-connection and per-chunk log
lines, bounded.
"""

from __future__ import annotations

from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from tests.unit.server.test_factory import formatted, quietFactory
from uppercase.server import UppercaseFactory
from uppercase.server._logbudget import CHUNKS_PER_SECOND, CONNECTIONS_PER_SECOND
from uppercase.testing import connectServer


class LogBudgetTests(SynchronousTestCase):
    """
    Per-connection and per-chunk lines are bounded as refusals are: past a
    budget a second, the rest of the second's are summed in one line.
    """

    def test_connectionLinesFolded(self) -> None:
        """
        Past L{CONNECTIONS_PER_SECOND} connections in a second, the rest of
        that second's connections are not logged one by one but summed in
        one line when the second ends: how many, opened, closed cleanly,
        lost.
        """
        clock = Clock()
        factory = quietFactory(clock, idleTimeout=0)
        total = 5321
        with capturedLogs() as events:
            for n in range(total):
                protocol, transport = connectServer(factory)
                if n % 250 == 0:
                    protocol.connectionLost(Failure(ConnectionLost("reset by peer")))
                else:
                    transport.receiveEOF()
            self.assertEqual(len(events), 2 * CONNECTIONS_PER_SECOND)
            clock.advance(1)
        self.assertEqual(len(events), 2 * CONNECTIONS_PER_SECOND + 1)
        folded = total - CONNECTIONS_PER_SECOND
        lost = len(range(CONNECTIONS_PER_SECOND, total, 250))
        self.assertEqual(
            formatted(events)[-1],
            f"Folded {folded:,} connections in the last second: {folded:,} opened, "
            f"{folded - lost:,} closed cleanly, {lost:,} lost (past 100 connections a "
            "second, their lines are summed here)",
        )
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_budgetEachSecond(self) -> None:
        """
        The budget is renewed each second: a steady 150 connections a
        second log 100 one by one and one summary, every second.
        """
        clock = Clock()
        factory = quietFactory(clock, idleTimeout=0)
        for _ in range(3):
            with capturedLogs() as events:
                for _ in range(150):
                    connectServer(factory)[1].receiveEOF()
                clock.advance(1)
            self.assertEqual(len(events), 2 * CONNECTIONS_PER_SECOND + 1)
            self.assertEqual(events[-1]["count"], 50)

    def test_underBudgetNothingFolded(self) -> None:
        """
        Up to the budget, every connection is logged and no timer is set.
        """
        clock = Clock()
        factory = quietFactory(clock, idleTimeout=0)
        with capturedLogs() as events:
            for _ in range(CONNECTIONS_PER_SECOND):
                connectServer(factory)[1].receiveEOF()
        self.assertEqual(len(events), 2 * CONNECTIONS_PER_SECOND)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_foldedConnectionClosedLater(self) -> None:
        """
        A folded connection that closes in a later second is counted in
        that second's summary, not logged on its own.
        """
        clock = Clock()
        factory = quietFactory(clock, idleTimeout=0)
        with capturedLogs():
            for _ in range(CONNECTIONS_PER_SECOND):
                connectServer(factory)
            _, late = connectServer(factory)
            clock.advance(1)
        clock.advance(5)
        with capturedLogs() as events:
            late.receiveEOF()
            self.assertEqual(events, [])
            clock.advance(1)
        self.assertEqual(
            formatted(events),
            [
                "Folded 1 connection in the last second: 0 opened, 1 closed cleanly, "
                "0 lost (past 100 connections a second, their lines are summed here)"
            ],
        )

    def test_chunkLinesFolded(self) -> None:
        """
        Past L{CHUNKS_PER_SECOND} received chunks in a second, the rest of
        that second's are summed in one line (chunks and bytes), with no
        timer per chunk: one for the summary.
        """
        clock = Clock()
        factory = UppercaseFactory(clock, logData=True, idleTimeout=0)
        _, transport = connectServer(factory)
        with capturedLogs() as events:
            for _ in range(CHUNKS_PER_SECOND + 4000):
                transport.receive(b"abc")
                self.assertLessEqual(len(clock.getDelayedCalls()), 1)
            self.assertEqual(len(events), CHUNKS_PER_SECOND)
            clock.advance(1)
        self.assertEqual(
            formatted(events)[-1],
            "Folded 4,000 received chunks in the last second (12,000 bytes; past "
            "1,000 chunks a second, they are summed here)",
        )
        self.assertEqual(clock.getDelayedCalls(), [])
