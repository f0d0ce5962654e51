"""
When the load mode sends: the closed loop keeps each pipeline full; the open
loop sends on schedule whether or not replies come, and measures each
latency from the message's scheduled time.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from uppercase.load.connection import ILoadConnection
from uppercase.load.payload import Payloads
from uppercase.load.protocol import LoadProtocol, Owner
from uppercase.load.schedule import ClosedLoop, OpenLoop, Schedule
from uppercase.load.stats import LoadStats
from uppercase.testing import StreamTransport, asciiUpper


class Relay(Owner):
    """
    Passes a protocol's room on to a schedule, as the run does.
    """

    schedule: Schedule

    def room(self, protocol: ILoadConnection) -> None:
        self.schedule.room(protocol)

    def lost(self, protocol: ILoadConnection, reason: Failure) -> None:
        pass


class ScheduleCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.stats = LoadStats()
        self.relay = Relay()
        self.payloads = Payloads("random", 16, seed=2)
        self.exhausted = 0

    def connect(self, count: int, pipeline: int) -> list[tuple[LoadProtocol, StreamTransport]]:
        pairs = []
        for number in range(1, count + 1):
            protocol = LoadProtocol(
                number, self.payloads, self.stats, self.clock, self.relay, pipeline
            )
            transport = StreamTransport()
            transport.connect(protocol)
            pairs.append((protocol, transport))
        return pairs

    def use(self, schedule: Schedule) -> Schedule:
        self.relay.schedule = schedule
        schedule.onExhausted = lambda: setattr(self, "exhausted", self.exhausted + 1)
        return schedule

    def answer(self, transport: StreamTransport) -> None:
        """
        The server answers everything this connection sent so far.
        """
        protocol = transport.protocol
        already = getattr(transport, "answered", 0)
        data = transport.value()
        transport.answered = len(data)  # type: ignore[attr-defined]
        protocol.dataReceived(asciiUpper(data[already:]))


class ClosedLoopTests(ScheduleCase):
    """
    Closed loop: every connection keeps its pipeline full.
    """

    def test_fillsPipelines(self) -> None:
        """
        At the start each connection gets as many messages as its pipeline
        holds; each reply is followed by one more message.
        """
        pairs = self.connect(3, pipeline=4)
        schedule = self.use(ClosedLoop(self.clock))
        schedule.start(p for p, t in pairs)
        self.assertEqual([p.sent for p, t in pairs], [4, 4, 4])
        protocol, transport = pairs[0]
        self.answer(transport)
        self.assertEqual((protocol.sent, protocol.inFlight), (8, 4))

    def test_limit(self) -> None:
        """
        With a limit of 10 messages over 3 connections of pipeline 4, 10
        are sent in all, and the schedule says so once.
        """
        pairs = self.connect(3, pipeline=4)
        schedule = self.use(ClosedLoop(self.clock, limit=10))
        schedule.start(p for p, t in pairs)
        for _ in range(3):
            for _protocol, transport in pairs:
                self.answer(transport)
        self.clock.advance(0)
        self.assertEqual(sum(p.sent for p, t in pairs), 10)
        self.assertEqual(self.stats.verified, 10)
        self.assertEqual(self.exhausted, 1)

    def test_stoppedSendsNothing(self) -> None:
        """
        After C{stop}, replies free room but nothing more is sent.
        """
        [(protocol, transport)] = self.connect(1, pipeline=2)
        schedule = self.use(ClosedLoop(self.clock))
        schedule.start([protocol])
        schedule.stop()
        self.answer(transport)
        self.assertEqual(protocol.sent, 2)


class OpenLoopTests(ScheduleCase):
    """
    Open loop: messages go out on schedule, whatever the replies do.
    """

    def test_keepsSendingWithoutReplies(self) -> None:
        """
        At 100 messages/s with no reply at all, one second later 101
        messages were sent (due at 0, 0.01, ... 1.0), spread evenly over the
        two connections.
        """
        pairs = self.connect(2, pipeline=0)
        schedule = self.use(OpenLoop(self.clock, rate=100))
        schedule.start(p for p, t in pairs)
        for _ in range(100):
            self.clock.advance(0.01)
        self.assertEqual(sum(p.sent for p, t in pairs), 101)
        self.assertEqual([p.sent for p, t in pairs], [51, 50])
        self.assertEqual(self.stats.answered, 0)

    def test_latencyCountsFromScheduledTime(self) -> None:
        """
        A server that stalls for 500 ms: at 10 messages/s, the message due
        at 0 is answered at 0.5 s (500 ms), and those due at 0.1 ... 0.5
        are answered then too (400 ... 0 ms, so the median is 200 ms): the
        stall is in the tail even at a low rate.
        """
        [(protocol, transport)] = self.connect(1, pipeline=0)
        schedule = self.use(OpenLoop(self.clock, rate=10))
        schedule.start([protocol])
        for _ in range(5):
            self.clock.advance(0.1)
        self.assertEqual(protocol.sent, 6)
        self.answer(transport)
        self.stats.roll()
        latencies = self.stats.total
        self.assertEqual(latencies.count, 6)
        self.assertApproximates(latencies.maximum(), 500.0, 0.5)
        self.assertApproximates(latencies.percentile(50), 200.0, 0.5)

    def test_backlogKeepsDueTime(self) -> None:
        """
        With a pipeline of 1, messages that fall due while one is in flight
        wait in the backlog and, sent later, still count from their own due
        time.
        """
        [(protocol, transport)] = self.connect(1, pipeline=1)
        schedule = self.use(OpenLoop(self.clock, rate=10))
        assert isinstance(schedule, OpenLoop)
        schedule.start([protocol])
        self.clock.advance(0.35)
        self.assertEqual((protocol.sent, schedule.backlog), (1, 3))
        for _ in range(4):
            self.answer(transport)
        self.assertEqual((protocol.sent, schedule.backlog), (4, 0))
        self.stats.roll()
        # Due at 0, 0.1, 0.2 and 0.3; all answered at 0.35.
        self.assertApproximates(self.stats.total.maximum(), 350.0, 0.5)
        self.assertApproximates(self.stats.total.percentile(0), 50.0, 0.1)

    def test_pausedTransportHoldsBacklog(self) -> None:
        """
        While a connection's buffers are full (flow control), due messages
        wait; once it drains they all go.
        """
        [(protocol, transport)] = self.connect(1, pipeline=0)
        schedule = self.use(OpenLoop(self.clock, rate=100))
        assert isinstance(schedule, OpenLoop)
        schedule.start([protocol])
        protocol.pauseProducing()
        self.clock.advance(0.1)
        self.assertEqual((protocol.sent, schedule.backlog), (1, 10))
        protocol.resumeProducing()
        self.assertEqual((protocol.sent, schedule.backlog), (11, 0))

    def test_limitEndsSchedule(self) -> None:
        """
        With a limit of 5 at 10/s, 5 messages are sent by 0.4 s, the
        schedule says it is exhausted, and no timer is left.
        """
        [(protocol, transport)] = self.connect(1, pipeline=0)
        schedule = self.use(OpenLoop(self.clock, rate=10, limit=5))
        schedule.start([protocol])
        for _ in range(10):
            self.clock.advance(0.1)
        self.assertEqual((protocol.sent, self.exhausted), (5, 1))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_noConnectionSkips(self) -> None:
        """
        With no connection at all, what falls due is skipped and counted,
        not queued to be sent in a burst later.
        """
        skipped: list[int] = []
        schedule = self.use(OpenLoop(self.clock, rate=10))
        assert isinstance(schedule, OpenLoop)
        schedule.onSkipped = skipped.append
        schedule.start([])
        self.clock.advance(0.5)
        [(protocol, transport)] = self.connect(1, pipeline=0)
        schedule.add(protocol)
        self.clock.advance(0.1)
        self.assertEqual(sum(skipped), 6)
        self.assertEqual(protocol.sent, 1)
        schedule.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_wakesOncePerTurnAtHighRates(self) -> None:
        """
        At 100,000 messages/s, 10 ms of clock in one step sends the 1,001
        messages due, in one wake-up (one timer), not one timer each.
        """
        [(protocol, transport)] = self.connect(1, pipeline=0)
        schedule = self.use(OpenLoop(self.clock, rate=100000))
        schedule.start([protocol])
        self.clock.advance(0.01)
        self.assertEqual(protocol.sent, 1001)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        schedule.stop()

    def test_durationSendsRateTimesDuration(self) -> None:
        """
        At 100 messages/s for 2 s the schedule hands out 200 messages, due
        at 0.00 ... 1.99 s: none falls due at the end of the duration,
        however late the run's stop comes (the command's timer, woken early
        to spin, reaches 2.00 s before its stop timer does).
        """
        [(protocol, transport)] = self.connect(1, pipeline=0)
        schedule = self.use(OpenLoop(self.clock, rate=100, duration=2.0))
        schedule.start([protocol])
        for _ in range(300):
            self.clock.advance(0.01)
        self.assertEqual(protocol.sent, 200)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        schedule.stop()

    def test_spinWakesEarly(self) -> None:
        """
        With C{spin}, the timer is set that much before the next message is
        due.
        """
        [(protocol, transport)] = self.connect(1, pipeline=0)
        schedule = self.use(OpenLoop(self.clock, rate=10, spin=0.002))
        schedule.start([protocol])
        [call] = self.clock.getDelayedCalls()
        self.assertApproximates(call.getTime(), 0.098, 1e-9)
        schedule.stop()
