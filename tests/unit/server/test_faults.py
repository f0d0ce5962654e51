"""
Tests for the faults on live connections (L{uppercase.server._faulty}), the
set they are drawn from (L{uppercase.server._faults}) and the pure plan
(L{uppercase.server._faultplan}), in memory with a fake clock.
"""

from __future__ import annotations

from random import Random
from typing import Any

from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from uppercase.server import FaultSet, ServerProtocol, UppercaseFactory, parseFault
from uppercase.server._faultplan import ReplySchedule, corrupt
from uppercase.server._faults import MAX_FAULTS, TooManyFaults, workerSeed
from uppercase.server._faulty import QUEUE_BOUND
from uppercase.server._metrics import FaultCollector
from uppercase.testing import CLIENT_ADDRESS, SERVER_ADDRESS, StreamTransport


class RecordingTransport(StreamTransport):
    """
    A L{StreamTransport} that keeps each write, with the clock's time.
    """

    def __init__(self, clock: Clock, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self.writes: list[tuple[float, bytes]] = []

    def write(self, data: bytes) -> None:
        self.writes.append((self.clock.seconds(), data))
        super().write(data)


def serve(
    *faults: str, seed: int = 1, host: Any = SERVER_ADDRESS, **kwargs: Any
) -> tuple[Clock, UppercaseFactory, Any, RecordingTransport]:
    """
    A factory with C{faults} and one connection to it.
    """
    clock = Clock()
    factory = UppercaseFactory(
        clock,
        logData=False,
        idleTimeout=0,
        faults=FaultSet([parseFault(f) for f in faults], seed),
    )
    protocol, transport = connect(factory, clock, host=host, **kwargs)
    return clock, factory, protocol, transport


def connect(
    factory: UppercaseFactory, clock: Clock, host: Any = SERVER_ADDRESS, **kwargs: Any
) -> tuple[Any, RecordingTransport]:
    protocol = factory.buildProtocol(CLIENT_ADDRESS)
    assert protocol is not None
    transport = RecordingTransport(clock, host=host, **kwargs)
    transport.connect(protocol)
    return protocol, transport


class NoFaultTests(SynchronousTestCase):
    """
    Without a fault, the data path is the plain echo's.
    """

    def test_emptySet(self) -> None:
        """
        With an empty set, connections are the plain server protocol.
        """
        factory = UppercaseFactory(Clock(), logData=False, faults=FaultSet())
        self.assertIs(type(factory.buildProtocol(CLIENT_ADDRESS)), ServerProtocol)

    def test_noneDrawn(self) -> None:
        """
        A connection that draws no fault (toxicity 0) becomes the plain
        server protocol in C{connectionMade}, and echoes at once.
        """
        clock, factory, protocol, transport = serve("latency,delay=1s,toxicity=0")
        self.assertIs(type(protocol), ServerProtocol)
        transport.receive(b"abc")
        self.assertEqual(transport.value(), b"ABC")
        self.assertEqual(factory.faultCounts()["latency"], 0)


class LatencyTests(SynchronousTestCase):
    """
    C{latency}: each reply leaves the delay (plus or minus the jitter) after
    its bytes were read, in order.
    """

    def test_delay(self) -> None:
        """
        A reply leaves exactly the delay after it was read.
        """
        clock, _, _, transport = serve("latency,delay=20ms")
        transport.receive(b"ab")
        clock.advance(0.005)
        transport.receive(b"cd")
        clock.advance(0.0149)
        self.assertEqual(transport.value(), b"")
        clock.advance(0.0001)
        self.assertEqual(transport.value(), b"AB")
        clock.advance(0.005)
        self.assertEqual(transport.writes, [(0.02, b"AB"), (0.025, b"CD")])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_jitterKeepsOrder(self) -> None:
        """
        With jitter, each reply leaves within delay +- jitter of being
        read, or with the reply before it: never out of order.  (The clock
        moves in steps of half a millisecond, the writes' resolution.)
        """
        clock, _, _, transport = serve("latency,delay=20ms,jitter=10ms", seed=3)
        sent = []
        for index in range(50):
            data = bytes([65 + index % 26])
            sent.append((clock.seconds(), data))
            transport.receive(data.lower())
            clock.pump([0.0005] * 4)
        clock.pump([0.0005] * 100)
        self.assertEqual(b"".join(d for _, d in transport.writes), b"".join(d for _, d in sent))
        previous = 0.0
        for (read, _), (left, _) in zip(sent, transport.writes):
            self.assertGreaterEqual(left, max(read + 0.01 - 1e-9, previous))
            self.assertTrue(left <= read + 0.0305 + 1e-9 or left == previous)
            previous = left
        self.assertTrue(
            len({round(t - r, 6) for (r, _), (t, _) in zip(sent, transport.writes)}) > 5
        )


class BandwidthTests(SynchronousTestCase):
    """
    C{bandwidth}: at most the rate, in bytes a second.
    """

    def test_rate(self) -> None:
        """
        100,000 bytes at 10KB a second take 10 seconds, in writes of 100
        bytes (10 ms' worth) 10 ms apart.
        """
        clock, _, _, transport = serve("bandwidth,rate=10KB")
        transport.receive(b"x" * 100000)
        for _ in range(1000):
            clock.advance(0.01)
        self.assertEqual(len(transport.value()), 100000)
        times = [t for t, _ in transport.writes]
        self.assertEqual({len(d) for _, d in transport.writes}, {100})
        self.assertAlmostEqual(times[-1], 9.99, places=6)
        self.assertEqual(clock.getDelayedCalls(), [])


class SlicerTests(SynchronousTestCase):
    """
    C{slicer}: writes of size +- variation bytes, delay apart.
    """

    def test_sizes(self) -> None:
        """
        Every write (but a chunk's last piece) is within size +-
        variation, and writes are the delay apart.
        """
        clock, _, _, transport = serve("slicer,size=10,variation=3,delay=1ms")
        transport.receive(b"y" * 1000)
        clock.pump([0.001] * 200)
        self.assertEqual(transport.value(), b"Y" * 1000)
        sizes = [len(d) for _, d in transport.writes]
        self.assertTrue(all(7 <= s <= 13 for s in sizes[:-1]), sizes)
        self.assertGreater(len(set(sizes)), 3)
        times = [t for t, _ in transport.writes]
        self.assertTrue(all(abs(b - a - 0.001) < 1e-9 for a, b in zip(times, times[1:])))


class StallTests(SynchronousTestCase):
    """
    C{stall}: after its size or time, nothing is sent and nothing is read.
    """

    def test_afterSize(self) -> None:
        """
        After exactly the size, sending stops and the transport is paused.
        """
        clock, _, protocol, transport = serve("stall,after=5B")
        transport.receive(b"abcdefgh")
        self.assertEqual(transport.value(), b"ABCDE")
        self.assertEqual(transport.producerState, "paused")
        transport.receive(b"more")
        clock.advance(100)
        self.assertEqual(transport.value(), b"ABCDE")
        self.assertFalse(transport.disconnecting)

    def test_afterTime(self) -> None:
        """
        After the time, replies held back are not sent and reading stops.
        """
        clock, _, _, transport = serve("stall,after=1s", "latency,delay=2s")
        transport.receive(b"abc")
        clock.advance(1)
        self.assertEqual(transport.producerState, "paused")
        clock.advance(5)
        self.assertEqual(transport.value(), b"")


class BlackholeTests(SynchronousTestCase):
    """
    C{blackhole}: reading goes on, replies stop.
    """

    def test_afterSize(self) -> None:
        """
        Bytes past the size are read and discarded.
        """
        _, _, protocol, transport = serve("blackhole,after=3B")
        transport.receive(b"abcdef")
        transport.receive(b"ghi")
        self.assertEqual(transport.value(), b"ABC")
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual((protocol.echoed, protocol.discarded), (3, 6))


class CloseTests(SynchronousTestCase):
    """
    C{close}: exactly the size, then the end of the stream.
    """

    def test_exactly(self) -> None:
        """
        Exactly the size is sent, then a FIN (a half-close); what the peer
        sends after is discarded.
        """
        _, _, protocol, transport = serve("close,after=10B")
        transport.receive(b"a" * 7)
        transport.receive(b"b" * 7)
        self.assertEqual(transport.value(), b"A" * 7 + b"B" * 3)
        self.assertTrue(transport.writeDisconnected)
        transport.receive(b"late")
        self.assertEqual((protocol.echoed, protocol.discarded), (10, 8))


class ResetTests(SynchronousTestCase):
    """
    C{reset}: an abort (in memory; a real TCP socket gets an RST).
    """

    def test_afterSize(self) -> None:
        """
        After the size has been taken by the peer, the connection is aborted.
        """
        _, _, _, transport = serve("reset,after=4B")
        transport.receive(b"abcdef")
        self.assertEqual(transport.value(), b"ABCD")
        self.assertTrue(transport.aborted)

    def test_waitsForThePeer(self) -> None:
        """
        While the bytes before the reset are still unsent, it waits.
        """
        clock, _, _, transport = serve("reset,after=4B", peerReads=False)
        transport.receive(b"abcdef")
        clock.advance(0.5)
        self.assertFalse(transport.aborted)
        self.assertEqual(transport.read(), b"ABCD")
        clock.advance(0.01)
        self.assertTrue(transport.aborted)

    def test_afterTime(self) -> None:
        """
        After the time, it is aborted.
        """
        clock, _, _, transport = serve("reset,after=2s")
        clock.advance(1.999)
        self.assertFalse(transport.aborted)
        clock.advance(0.001)
        self.assertTrue(transport.aborted)


class SlowCloseTests(SynchronousTestCase):
    """
    C{slow-close}: after the peer's end, the delay, then what is owed and
    the close.
    """

    def test_delay(self) -> None:
        """
        The replies still held and the close wait the delay after the EOF.
        """
        clock, _, _, transport = serve("slow-close,delay=3s", "latency,delay=1s")
        transport.receive(b"abc")
        transport.receiveEOF()
        clock.advance(2.999)
        self.assertEqual((transport.value(), transport.disconnected), (b"", False))
        clock.advance(0.001)
        self.assertEqual((transport.value(), transport.disconnected), (b"ABC", True))

    def test_halfCloseWaitsForLatency(self) -> None:
        """
        Without slow-close, an EOF closes once the replies held back have
        left, not before.
        """
        clock, _, _, transport = serve("latency,delay=1s")
        transport.receive(b"abc")
        transport.receiveEOF()
        self.assertFalse(transport.disconnected)
        clock.advance(1)
        self.assertEqual((transport.value(), transport.disconnected), (b"ABC", True))


class CorruptTests(SynchronousTestCase):
    """
    C{corrupt}: one byte a chunk flipped (XOR 0x80) at the seeded offset.
    """

    def test_oneBytePerChunk(self) -> None:
        """
        With probability 1, every chunk differs from the echo in exactly
        one byte, by 0x80, at the offset the connection's generator gives.
        """
        clock, factory, protocol, transport = serve("corrupt,probability=1", seed=9)
        chunks = [bytes(range(97, 123)) * 3 for _ in range(20)]
        for chunk in chunks:
            transport.receive(chunk)
        # The same draws again: the set's generator gives the connection's.
        rng = Random(Random(9).getrandbits(64))
        rng.random()  # its toxicity
        for chunk, (_, written) in zip(chunks, transport.writes):
            expected = corrupt(chunk.upper(), rng, 1.0)
            self.assertEqual(written, expected)
            diffs = [i for i in range(len(chunk)) if written[i] != chunk.upper()[i]]
            self.assertEqual(len(diffs), 1)
            self.assertEqual(written[diffs[0]] ^ chunk.upper()[diffs[0]], 0x80)

    def test_probability(self) -> None:
        """
        With probability 0, nothing changes.
        """
        _, _, _, transport = serve("corrupt,probability=0")
        transport.receive(b"abc")
        self.assertEqual(transport.value(), b"ABC")


class RefuseAndDelayAcceptTests(SynchronousTestCase):
    """
    C{refuse} and C{delay-accept}.
    """

    def test_refuse(self) -> None:
        """
        A refused connection is closed at once, and its close line names
        the fault.
        """
        with capturedLogs() as events:
            _, factory, _, transport = serve("refuse")
        self.assertTrue(transport.disconnected)
        self.assertEqual(events[-1]["faults"], ["refuse"])
        self.assertIn("faults: refuse", events[-1]["log_format"].format(**events[-1]))
        self.assertEqual(factory.faultCounts()["refuse"], 1)

    def test_delayAccept(self) -> None:
        """
        The first reply byte waits the delay after the accept; later ones
        do not wait again.
        """
        clock, _, _, transport = serve("delay-accept,delay=500ms")
        transport.receive(b"a")
        clock.advance(0.499)
        self.assertEqual(transport.value(), b"")
        clock.advance(0.001)
        self.assertEqual(transport.value(), b"A")
        transport.receive(b"b")
        self.assertEqual(transport.value(), b"AB")


class FlowControlTests(SynchronousTestCase):
    """
    What is held back is bounded.
    """

    def test_queueBound(self) -> None:
        """
        Past L{QUEUE_BOUND} bytes held, reading pauses; once they drain
        below half of it, it resumes.
        """
        clock, _, _, transport = serve("latency,delay=1s")
        transport.receive(b"x" * QUEUE_BOUND)
        self.assertEqual(transport.producerState, "producing")
        transport.receive(b"x")
        self.assertEqual(transport.producerState, "paused")
        clock.advance(1)
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(len(transport.value()), QUEUE_BOUND + 1)

    def test_gracefulClose(self) -> None:
        """
        L{finish} (a graceful close) waits for the replies held back, then
        half-closes; what arrives meanwhile is discarded.
        """
        clock, _, protocol, transport = serve("latency,delay=1s")
        transport.receive(b"abc")
        protocol.finish()
        transport.receive(b"zz")
        self.assertFalse(transport.writeDisconnecting)
        clock.advance(1)
        self.assertEqual(transport.value(), b"ABC")
        self.assertTrue(transport.writeDisconnected)
        self.assertEqual((protocol.echoed, protocol.discarded), (3, 2))


class DrawTests(SynchronousTestCase):
    """
    Which connections get which faults.
    """

    def affected(self, seed: int, count: int = 200) -> list[int]:
        clock = Clock()
        factory = UppercaseFactory(
            clock, logData=False, faults=FaultSet([parseFault("refuse,toxicity=0.5")], seed)
        )
        hit = []
        for index in range(count):
            _, transport = connect(factory, clock)
            if transport.disconnected:
                hit.append(index)
        return hit

    def test_toxicityReproducible(self) -> None:
        """
        About the toxicity's fraction of connections are affected, the
        same ones for the same seed, others for another.
        """
        first = self.affected(5)
        self.assertTrue(70 <= len(first) <= 130, len(first))
        self.assertEqual(self.affected(5), first)
        self.assertNotEqual(self.affected(6), first)

    def test_decidedOnce(self) -> None:
        """
        Toxicity is decided at the accept: a connection that was not
        affected never is, however much it sends.
        """
        clock, factory, protocol, transport = serve("latency,delay=1s,toxicity=0", seed=2)
        for _ in range(100):
            transport.receive(b"a")
        self.assertEqual(transport.value(), b"A" * 100)
        self.assertEqual(factory.faults and factory.faults.applied["latency"], 0)

    def test_on(self) -> None:
        """
        A fault with C{on} applies only to the listener with that port or
        UNIX-socket path.
        """
        _, _, _, other = serve("refuse,on=9000")
        self.assertFalse(other.disconnected)
        _, _, _, matched = serve("refuse,on=9000", host=IPv4Address("TCP", "127.0.0.1", 9000))
        self.assertTrue(matched.disconnected)
        _, _, _, unix = serve("refuse,on=/run/u.sock", host=UNIXAddress("/run/u.sock"))
        self.assertTrue(unix.disconnected)

    def test_changesAffectLaterConnections(self) -> None:
        """
        A fault added to the set applies to connections accepted after it;
        one already open keeps what it drew.
        """
        clock = Clock()
        faults = FaultSet(seed=1)
        factory = UppercaseFactory(clock, logData=False, faults=faults)
        before, beforeTransport = connect(factory, clock)
        faults.add(parseFault("latency,delay=1s"))
        after, afterTransport = connect(factory, clock)
        beforeTransport.receive(b"a")
        afterTransport.receive(b"a")
        self.assertEqual((beforeTransport.value(), afterTransport.value()), (b"A", b""))

    def test_workerSeeds(self) -> None:
        """
        Each worker's seed differs, and is the same from run to run.
        """
        self.assertEqual(workerSeed(7, 1), workerSeed(7, 1))
        self.assertNotEqual(workerSeed(7, 1), workerSeed(7, 2))


class SetTests(SynchronousTestCase):
    """
    L{FaultSet}'s list, add, remove and clear.
    """

    def test_ids(self) -> None:
        """
        Ids start at 1 and are never reused.
        """
        faults = FaultSet([parseFault("refuse")], seed=3)
        self.assertEqual(faults.seed, 3)
        second = faults.add(parseFault("reset"))
        self.assertTrue(faults.remove(second))
        self.assertFalse(faults.remove(second))
        third = faults.add(parseFault("stall,after=1s"))
        self.assertEqual([i for i, _ in faults.list()], [1, 3])
        self.assertEqual(third, 3)
        self.assertEqual(faults.clear(), 2)
        self.assertEqual(faults.list(), [])

    def test_bounded(self) -> None:
        """
        A set holds at most L{MAX_FAULTS}: one more is a L{TooManyFaults}
        and is not added; once one is removed, one more fits.
        """
        faults = FaultSet([parseFault("refuse")] * MAX_FAULTS, seed=3)
        error = self.assertRaises(TooManyFaults, faults.add, parseFault("reset"))
        self.assertEqual(str(error), "reset: at most 64 faults at once (remove one first)")
        self.assertEqual(len(faults), MAX_FAULTS)
        faults.remove(1)
        self.assertEqual(faults.add(parseFault("reset")), MAX_FAULTS + 1)


class MetricsTests(SynchronousTestCase):
    """
    C{uppercase_faults_applied_total{kind}}.
    """

    def test_applied(self) -> None:
        """
        Each connection that got a fault counts once under its kind.
        """
        clock = Clock()
        factory = UppercaseFactory(
            clock,
            logData=False,
            faults=FaultSet([parseFault("refuse"), parseFault("corrupt,probability=1")], 1),
        )
        connect(factory, clock)
        connect(factory, clock)
        [family] = FaultCollector(factory.faultCounts).collect()
        samples = {s.labels["kind"]: s.value for s in family.samples}
        self.assertEqual(samples, {"refuse": 2, "corrupt": 2})
        self.assertEqual(family.name, "uppercase_faults_applied")


class ScheduleTests(SynchronousTestCase):
    """
    L{ReplySchedule} alone, fed clock values.
    """

    def test_limit(self) -> None:
        """
        Bytes past the limit are not queued.
        """
        schedule = ReplySchedule(0.0, Random(1), limit=5)
        self.assertEqual(schedule.push(b"abcdefg", 0.0), 5)
        self.assertEqual(schedule.take(0.0), b"abcde")
        self.assertTrue(schedule.limitReached)

    def test_nextTime(self) -> None:
        """
        The next write is due at the latest of its release, the pacing and
        the slicing.
        """
        schedule = ReplySchedule(10.0, Random(1), latency=1.0, acceptDelay=2.0)
        self.assertIsNone(schedule.nextTime())
        schedule.push(b"a", 10.0)
        self.assertEqual(schedule.nextTime(), 12.0)
        self.assertEqual(schedule.take(11.9), b"")
        self.assertEqual(schedule.take(12.0), b"a")


class NoDelayTransport(RecordingTransport):
    """
    A L{RecordingTransport} that keeps what C{setTcpNoDelay} was last told.
    """

    noDelay = False

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.noDelay = enabled


class NagleTests(SynchronousTestCase):
    """
    A connection whose replies a fault holds back turns Nagle's algorithm
    off: a reply written while the one before it is unacknowledged would
    otherwise wait for the peer's next segment, and leave late.
    """

    def noDelay(self, *faults: str) -> bool:
        clock = Clock()
        factory = UppercaseFactory(
            clock, logData=False, idleTimeout=0, faults=FaultSet([parseFault(f) for f in faults])
        )
        protocol = factory.buildProtocol(CLIENT_ADDRESS)
        assert protocol is not None
        transport = NoDelayTransport(clock, host=SERVER_ADDRESS)
        transport.connect(protocol)
        return transport.noDelay

    def test_heldBack(self) -> None:
        """
        Latency, bandwidth, slicer and delay-accept each turn it off.
        """
        for fault in [
            "latency,delay=20ms",
            "bandwidth,rate=1MB",
            "slicer,size=10",
            "delay-accept,delay=1s",
        ]:
            self.assertTrue(self.noDelay(fault), fault)

    def test_notHeldBack(self) -> None:
        """
        Faults that write each reply at once, and no fault, leave it on.
        """
        for faults in [
            ("corrupt,probability=1",),
            ("close,after=10KB",),
            ("latency,delay=20ms,toxicity=0",),
        ]:
            self.assertFalse(self.noDelay(*faults), faults)


class DescribeTests(SynchronousTestCase):
    """
    L{FaultSet.describe}, the start-up line's text.
    """

    def test_faults(self) -> None:
        """
        Each fault as given, then the seed.
        """
        faults = FaultSet([parseFault("latency,delay=20ms"), parseFault("refuse")], seed=7)
        self.assertEqual(faults.describe(), "latency,delay=20ms, refuse; seed 7")

    def test_none(self) -> None:
        """
        An empty set (C{--control} with no C{--fault}) says C{none}, not an
        empty list.
        """
        self.assertEqual(FaultSet(seed=3).describe(), "none; seed 3")
