"""
The C{uppercase-epoll} reactor's dispatch, with a fake poller: what a
connection's code sees while it handles an event.
"""

from __future__ import annotations

import select
from typing import Any

from twisted.logger import capturedLogs
from twisted.python import context, log
from twisted.python.log import ILogContext
from twisted.trial.unittest import SynchronousTestCase

from uppercase.net import reactor as _reactor
from uppercase.net.reactor import UppercaseEPollReactor


class Poller:
    """
    Gives the events it is told to, once.
    """

    def __init__(self, events: list[tuple[int, int]]) -> None:
        self.events = events

    def poll(self, timeout: float, count: int) -> list[tuple[int, int]]:
        events, self.events = self.events, []
        return events

    def unregister(self, fd: int) -> None:
        pass


def newReactor(case: SynchronousTestCase) -> UppercaseEPollReactor:
    """
    A reactor that is never run, closed when the test ends.
    """
    reactor = UppercaseEPollReactor()
    poller = reactor._poller
    case.addCleanup(poller.close)
    case.addCleanup(reactor.waker.connectionLost, None)
    return reactor


class Selectable:
    """
    A descriptor whose read handler records the logging context it runs in,
    logs a line through the legacy API, and may fail.
    """

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.seen: list[Any] = []

    def logPrefix(self) -> str:
        return "EchoProtocol,7,192.0.2.7"

    def fileno(self) -> int:
        return 99

    def doRead(self) -> None:
        self.seen.append(dict(context.get(ILogContext)))
        log.msg("handling")
        if self.fail:
            raise ValueError("broken handler")

    def connectionLost(self, reason: Any) -> None:
        self.seen.append("lost")


class DispatchTests(SynchronousTestCase):
    """
    Each event is handled in the logging context Twisted's reactor would
    give it: the connection's prefix, for anything it logs.
    """

    def setUp(self) -> None:
        self.reactor = newReactor(self)
        self.selectable = Selectable()
        self.reactor._selectables[99] = self.selectable
        self.reactor._reads.add(99)

    def poll(self) -> None:
        self.reactor._poller = Poller([(99, select.EPOLLIN)])
        self.reactor.doPoll(0)

    def test_contextNamesTheConnection(self) -> None:
        """
        The handler runs with the connection's prefix as the log system, and
        a legacy log line says so; the context is gone afterwards.
        """
        with capturedLogs() as events:
            self.poll()
        self.assertEqual(self.selectable.seen[0]["system"], "EchoProtocol,7,192.0.2.7")
        [line] = [e for e in events if e.get("message") == ("handling",)]
        self.assertEqual(line["system"], "EchoProtocol,7,192.0.2.7")
        self.assertNotEqual(context.get(ILogContext, {}).get("system"), "EchoProtocol,7,192.0.2.7")

    def test_errorsNameTheConnection(self) -> None:
        """
        An error from the handler is logged with the connection's prefix,
        and the connection is dropped.
        """
        self.selectable.fail = True
        with capturedLogs() as events:
            self.poll()
        [error] = [e for e in events if e.get("isError")]
        self.assertEqual(error["system"], "EchoProtocol,7,192.0.2.7")
        self.assertEqual(self.selectable.seen[-1], "lost")
        self.flushLoggedErrors(ValueError)


class FallbackTests(SynchronousTestCase):
    """
    Without Twisted's context stack where it looks, the reactor says so once
    and dispatches as Twisted's does, with the same context.
    """

    def test_fallback(self) -> None:
        """
        One warning; the handler still sees the connection's prefix.
        """
        self.patch(_reactor, "_contextStack", lambda: None)
        reactor = newReactor(self)
        selectable = Selectable()
        reactor._selectables[99] = selectable
        reactor._reads.add(99)
        with capturedLogs() as events:
            for _ in range(2):
                reactor._poller = Poller([(99, select.EPOLLIN)])
                reactor.doPoll(0)
        warnings = [e for e in events if "context stack" in e.get("log_format", "")]
        self.assertEqual(len(warnings), 1)
        self.assertEqual([s["system"] for s in selectable.seen], ["EchoProtocol,7,192.0.2.7"] * 2)
