"""
A misbehaving server's effects, as a load run reports them (message runs,
C{--stream}, C{--fail-fast}, the prober's metrics): a reset, a cut-off, a
stall, corrupted bytes, latency and bandwidth, a refusal and a slow open,
each played in memory on a fake clock by L{FaultyPeer}, each reported as
what it is with the byte counts the fault implies.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.unit.load.test_run import Collect, FakeConnect
from uppercase.client._settings import ClientSettings
from uppercase.load.metrics import LoadCollector
from uppercase.load.report import summaryLines, summaryRecord
from uppercase.load.result import RunResult
from uppercase.load.run import LoadRun
from uppercase.testing import StreamTransport, asciiUpper

STEP = 0.001
"""Seconds of fake time per step of the peer."""


class FaultyPeer:
    """
    The server of every connection L{FakeConnect} completes: it echoes
    what each connection wrote, uppercased, C{delay} seconds later, at most
    C{rate} bytes a second (0: no limit), with the byte at C{corrupt} of
    every C{size}-byte message flipped (XOR 0x80), and after C{after} reply
    bytes on a connection does C{then}: C{reset} (an RST), C{close} (a
    FIN), C{stall} (never another byte).
    """

    def __init__(
        self,
        clock: Clock,
        connect: FakeConnect,
        *,
        after: int | None = None,
        then: str = "stall",
        delay: float = 0.0,
        rate: float = 0.0,
        corrupt: int | None = None,
        size: int = 0,
    ) -> None:
        self.clock = clock
        self.connect = connect
        self.after = after
        self.then = then
        self.delay = delay
        self.rate = rate
        self.corrupt = corrupt
        self.size = size
        self._state: dict[int, dict[str, Any]] = {}

    def step(self) -> None:
        now = self.clock.seconds()
        for transport in list(self.connect.transports):
            state = self._state.setdefault(
                id(transport), {"seen": 0, "queue": [], "back": 0, "done": False, "last": now}
            )
            data = transport.value()
            if len(data) > state["seen"]:
                state["queue"].append([now + self.delay, asciiUpper(data[state["seen"] :])])
                state["seen"] = len(data)
            budget = int(self.rate * (now - state["last"])) if self.rate else -1
            if self.rate and not budget:
                continue
            state["last"] = now
            self._deliver(transport, state, now, budget)
            if transport.writeDisconnected and not state["queue"] and not state["done"]:
                transport.receiveEOF()  # a stream's end: every byte is back

    def _deliver(
        self, transport: StreamTransport, state: dict[str, Any], now: float, budget: int
    ) -> None:
        queue = state["queue"]
        while queue and queue[0][0] <= now and not state["done"] and not transport.disconnected:
            chunk = queue[0][1]
            take = len(chunk)
            if budget >= 0:
                take = min(take, budget)
            if self.after is not None:
                take = min(take, self.after - state["back"])
            piece, rest = chunk[:take], chunk[take:]
            if rest:
                queue[0][1] = rest
            else:
                queue.pop(0)
            if self.corrupt is not None:
                piece = self._flip(piece, state["back"])
            state["back"] += len(piece)
            if budget >= 0:
                budget -= len(piece)
            if piece:
                transport.receive(piece)
            if self.after is not None and state["back"] >= self.after:
                state["done"] = True
                if self.then == "reset":
                    transport.reset()
                elif self.then == "close":
                    transport.receiveEOF()
            if budget == 0:
                break

    def _flip(self, piece: bytes, start: int) -> bytes:
        flipped = bytearray(piece)
        first = start - start % self.size + self.corrupt if self.corrupt is not None else 0
        if first < start:
            first += self.size
        for offset in range(first, start + len(piece), self.size):
            flipped[offset - start] ^= 0x80
        return bytes(flipped)


class FaultCase(SynchronousTestCase):
    def run_(self, settings: ClientSettings, *, reconnect: bool = False, **peer: Any) -> RunResult:
        """
        Run C{settings} against a L{FaultyPeer} made with C{peer}, every
        connection accepted, until the run is over (a minute at most).
        """
        self.clock = Clock()
        self.connect = FakeConnect()
        self.observer = Collect()
        self.peer = FaultyPeer(self.clock, self.connect, size=settings.size, **peer)
        self.loadRun = LoadRun(
            settings, self.clock, self.connect, self.observer, reconnect=reconnect
        )
        done = self.loadRun.start()
        self.timedOutAt: float | None = None
        while not done.called and self.clock.seconds() < 60:
            while self.connect.attempts:
                self.connect.succeed()
            self.peer.step()
            self.clock.advance(STEP)
            if self.timedOutAt is None and self.loadRun.stats.errors.get("reply timeout"):
                self.timedOutAt = self.clock.seconds()
        return self.successResultOf(done)

    def metrics(self) -> str:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(LoadCollector(self.loadRun))
        return generate_latest(registry).decode()

    def owed(self, connection: int) -> int:
        """
        What connection C{connection} sent that did not come back.
        """
        transport = self.connect.transports[connection - 1]
        return len(transport.value()) - self.peer._state[id(transport)]["back"]


CLOSED = ClientSettings(connections=3, count=0, duration=30, size=1000, pipeline=4, timeout=2.0)
"""A closed loop of 3 connections, 4 messages of 1,000 bytes in flight each."""


class MessageRunTests(FaultCase):
    """
    Message runs (closed and open loop) against each fault.
    """

    def test_resetAfterBytes(self) -> None:
        """
        A reset after 64,000 reply bytes on each of 3 connections: each is
        C{reset after 64,000 bytes received} with what it still owed, the
        summary's errors say so, and so do the failure line, C{--json}
        and the metrics; exit status 1.
        """
        result = self.run_(CLOSED, after=64_000, then="reset")
        self.assertEqual((result.errors, result.status, result.verified), ({"reset": 3}, 1, 192))
        self.assertEqual([end.received for end in result.ends], [64_000] * 3)
        self.assertEqual([end.owed for end in result.ends], [self.owed(n) for n in (1, 2, 3)])
        owed = self.owed(1)
        self.assertEqual(owed, 4000)
        lines = summaryLines(result)
        self.assertIn("errors: 3 reset (after 64,000 bytes received)", lines)
        self.assertIn("  connection 1: reset after 64,000 bytes received, 4,000 owed", lines)
        self.assertEqual(
            result.failure,
            "every connection was lost (3 reset); "
            "first: connection 1: reset after 64,000 bytes received, 4,000 owed",
        )
        record = json.loads(json.dumps(summaryRecord(result)))
        self.assertEqual(
            record["ended_early"][0],
            {"connection": 1, "kind": "reset", "received_bytes": 64000, "owed_bytes": 4000},
        )
        self.assertEqual(record["received_bytes_by_error"], {"reset": {"min": 64000, "max": 64000}})
        self.assertEqual(record["errors"], {"reset": 3})
        self.assertIn('uppercase_client_errors_total{kind="reset"} 3.0', self.metrics())

    def test_closeAfterBytes(self) -> None:
        """
        A FIN after exactly 10,000 reply bytes: C{closed early (10,000 of
        14,000 bytes)}, not a generic close.
        """
        result = self.run_(dataclasses.replace(CLOSED, connections=1), after=10_000, then="close")
        self.assertEqual((result.errors, result.status, result.lost), ({"closed early": 1}, 1, 4))
        self.assertEqual(
            result.failure,
            "every connection was lost (1 closed early); "
            "first: connection 1: closed early (10,000 of 14,000 bytes)",
        )
        self.assertIn("errors: 1 closed early (after 10,000 bytes received)", summaryLines(result))
        self.assertIn('uppercase_client_errors_total{kind="closed early"} 1.0', self.metrics())

    def test_stallAfterBytes(self) -> None:
        """
        A server that stops replying after 1,000,000 bytes: a time-out
        after --timeout, with the bytes received and owed.
        """
        result = self.run_(dataclasses.replace(CLOSED, connections=1), after=1_000_000)
        self.assertEqual((result.errors, result.status), ({"reply timeout": 1}, 1))
        self.assertEqual(
            str(result.ends[0]),
            "connection 1: timed out after 1,000,000 bytes received, 4,000 owed",
        )
        self.assertIn(
            "errors: 1 reply timeout (after 1,000,000 bytes received)", summaryLines(result)
        )
        self.assertIn('uppercase_client_errors_total{kind="reply timeout"} 1.0', self.metrics())

    def test_failFastOnReset(self) -> None:
        """
        With --fail-fast, the first connection reset ends the run at once,
        in one line naming it.
        """
        settings = dataclasses.replace(CLOSED, failFast=True)
        result = self.run_(settings, after=64_000, then="reset")
        self.assertEqual(
            result.failure, "connection 1: reset after 64,000 bytes received, 4,000 owed"
        )
        self.assertEqual(result.status, 1)
        self.assertLess(self.clock.seconds(), 1)

    def test_everyCorruptedMessageReported(self) -> None:
        """
        One byte flipped in every reply (at byte 100 of each message):
        every message is a mismatch, each at its offset, the first ten
        listed, in the summary, C{--json} and the metrics alike.
        """
        settings = ClientSettings(connections=2, count=50, size=1000, pipeline=4)
        result = self.run_(settings, corrupt=100)
        self.assertEqual((result.sent, result.failed, result.mismatchCount), (50, 50, 50))
        self.assertEqual(result.errors, {"mismatch": 50})
        self.assertEqual(len(result.mismatches), 10)
        for mismatch in result.mismatches:
            self.assertEqual(mismatch.messageOffset, 100)
            self.assertEqual(mismatch.offset, (mismatch.message - 1) * 1000 + 100)
            received = mismatch.received[mismatch.messageOffset - mismatch.excerptStart]
            expected = mismatch.expected[mismatch.messageOffset - mismatch.excerptStart]
            self.assertEqual(received ^ expected, 0x80)
        lines = summaryLines(result)
        self.assertIn("errors: 50 mismatch", lines)
        self.assertIn("  ... and 40 more", lines)
        record = summaryRecord(result)
        self.assertEqual((record["mismatch_count"], len(record["mismatches"])), (50, 10))
        self.assertEqual(record["mismatches"][0]["message_offset"], 100)
        text = self.metrics()
        self.assertIn('uppercase_client_errors_total{kind="mismatch"} 50.0', text)
        self.assertIn("uppercase_client_messages_failed_total 50.0", text)
        self.assertEqual(result.status, 1)

    def test_latencyInFigures(self) -> None:
        """
        Replies delayed 20 ms, at 200 messages/s: p50 and p99 are 20 ms
        (to the fake clock's step), and the run passes.
        """
        settings = ClientSettings(connections=1, count=0, rate=200, duration=2, size=64)
        result = self.run_(settings, delay=0.020)
        assert result.latency is not None
        self.assertEqual((result.status, result.errors), (0, {}))
        self.assertGreaterEqual(result.latency["p50"], 20.0)
        self.assertLessEqual(result.latency["p99"], 20.0 + 2 * STEP * 1000 + 0.1)

    def test_refused(self) -> None:
        """
        A server that accepts and closes at once: a connection closed
        before the run sent anything is C{closed by server after 0 bytes},
        one closed with messages sent C{closed early (0 of 4,000 bytes)}.
        """
        self.clock = Clock()
        self.connect = FakeConnect()
        run = LoadRun(
            dataclasses.replace(CLOSED, connections=2), self.clock, self.connect, Collect()
        )
        done = run.start()
        self.connect.succeed().receiveEOF()
        self.connect.succeed().receiveEOF()
        result = self.successResultOf(done)
        self.assertEqual(
            (result.errors, result.sent, result.status),
            ({"closed by server": 1, "closed early": 1}, 4, 1),
        )
        self.assertEqual(
            result.failure,
            "every connection was lost (1 closed by server, 1 closed early); "
            "first: connection 1: closed by server after 0 bytes received, 0 owed",
        )

    def test_refusedAfterSending(self) -> None:
        """
        A server that closes before its first reply byte, a message being
        due: C{closed early (0 of 4,000 bytes)}.
        """
        result = self.run_(dataclasses.replace(CLOSED, connections=1), after=0, then="close")
        self.assertEqual(str(result.ends[0]), "connection 1: closed early (0 of 4,000 bytes)")

    def test_delayedAccept(self) -> None:
        """
        A slow open (the first reply 1.5 s late, within --timeout) is
        latency, seen in the maximum; one later than --timeout, a time-out
        after 0 bytes.
        """
        settings = ClientSettings(connections=1, count=5, size=64, timeout=2.0)
        result = self.run_(settings, delay=1.5)
        assert result.latency is not None
        self.assertEqual(result.status, 0)
        self.assertGreaterEqual(result.latency["max"], 1500)
        result = self.run_(settings, delay=3.0)
        self.assertEqual(
            str(result.ends[0]), "connection 1: timed out after 0 bytes received, 64 owed"
        )
        self.assertEqual(result.status, 1)

    def test_shortTimeoutTold(self) -> None:
        """
        A --timeout under a second is kept to within a quarter of it: a
        first reply 0.5 s late is a time-out with --timeout 0.2 (the
        run looked once a second, and took the late reply as verified),
        told before 0.25 s have passed.
        """
        settings = ClientSettings(connections=1, count=5, size=64, timeout=0.2)
        result = self.run_(settings, delay=0.5)
        self.assertEqual(
            str(result.ends[0]), "connection 1: timed out after 0 bytes received, 64 owed"
        )
        self.assertEqual(result.status, 1)
        assert self.timedOutAt is not None
        self.assertLessEqual(self.timedOutAt, 0.25)


STREAM = ClientSettings(connections=1, stream=True, count=100, size=1000, timeout=2.0)
"""A stream of 100,000 bytes."""


class StreamTests(FaultCase):
    """
    C{--stream} runs against each fault.
    """

    def test_reset(self) -> None:
        """
        A reset after 64,000 bytes of the 100,000 sent.
        """
        result = self.run_(STREAM, after=64_000, then="reset")
        self.assertEqual(
            (result.errors, result.status, result.streamBytes), ({"reset": 1}, 1, 64_000)
        )
        self.assertEqual(
            str(result.ends[0]), "connection 1: reset after 64,000 bytes received, 36,000 owed"
        )

    def test_close(self) -> None:
        """
        A FIN after 10,000 bytes of the 100,000 sent.
        """
        result = self.run_(STREAM, after=10_000, then="close")
        self.assertEqual((result.errors, result.status), ({"closed early": 1}, 1))
        self.assertEqual(
            str(result.ends[0]), "connection 1: closed early (10,000 of 100,000 bytes)"
        )
        self.assertIn("every connection was lost (1 closed early)", result.failure or "")

    def test_stall(self) -> None:
        """
        No byte after 50,000: a time-out with the bytes received and owed.
        """
        result = self.run_(STREAM, after=50_000)
        self.assertEqual((result.errors, result.status), ({"reply timeout": 1}, 1))
        self.assertEqual(
            str(result.ends[0]), "connection 1: timed out after 50,000 bytes received, 50,000 owed"
        )

    def test_corrupt(self) -> None:
        """
        A byte flipped in every 1,000-byte stretch: 100 mismatches, each at
        its offset.
        """
        result = self.run_(STREAM, corrupt=7)
        self.assertEqual((result.mismatchCount, result.status), (100, 1))
        self.assertEqual([m.offset for m in result.mismatches], [n * 1000 + 7 for n in range(10)])
        self.assertTrue(
            (result.failure or "").startswith("100 wrong 1000-byte stretches of the streams")
        )

    def test_bandwidth(self) -> None:
        """
        Replies at most 100,000 bytes a second: 0.1 MB/s measured.
        """
        settings = dataclasses.replace(STREAM, count=300)
        result = self.run_(settings, rate=100_000)
        self.assertEqual(result.status, 0)
        assert result.megabytesPerSecond is not None
        self.assertLess(abs(result.megabytesPerSecond - 0.1), 0.005)
