"""
Tests for C{uppercase-client --workers N} (L{uppercase.cli.localshards}), on a
fake reactor whose child processes the tests play.
"""

from __future__ import annotations

import io
import json
from dataclasses import fields, replace
from typing import Any

from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from tests.unit.load.test_merge import WHOLE, shardLine
from uppercase.cli import command
from uppercase.cli.localshards import LocalShards, lead, shardArgv
from uppercase.client._settings import ClientSettings
from uppercase.load.shard import runIdentity, splitRun


class FakeProcess:
    def __init__(self) -> None:
        self.signals: list[str] = []

    def signalProcess(self, name: str) -> None:
        self.signals.append(name)


class ProcessReactor(MemoryReactorClock):
    """
    A memory reactor that records the processes it is asked to spawn.
    """

    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[tuple[Any, list[str], FakeProcess]] = []

    def spawnProcess(self, protocol: Any, executable: str, args: list[str], env: Any = None) -> Any:
        process = FakeProcess()
        self.spawned.append((protocol, list(args), process))
        return process


def interval(**changes: Any) -> bytes:
    record = dict(
        type="interval",
        elapsed_s=1.0,
        phase="measuring",
        connections=3,
        sent=150,
        verified=150,
        failed=0,
        errors={},
        messages_per_s=150.0,
        mb_per_s=0.0096,
        latency_ms=None,
        backlog=0,
    )
    record.update(changes)
    return json.dumps(record).encode() + b"\n"


class ShardArgvTests(SynchronousTestCase):
    """
    What a shard process is given is the shard's settings.
    """

    def test_roundTrip(self) -> None:
        """
        The command line of shard I of N, parsed, gives the settings
        L{splitRun} gives shard I, with the run's start and identity.
        """
        whole = ClientSettings(
            connections=5, rate=100.0, duration=3.0, message=b"h\xffi", payload="text", seed=4
        )
        for index in range(2):
            options = command._Options()
            options.parseOptions(shardArgv(whole, index, 2, 1234.5, "abc", 7.5))
            self.assertEqual(options.settings, replace(splitRun(whole, index, 2)[0], load=True))
            self.assertEqual((options.startAt, options.shard.runId), (1234.5, "abc"))
            self.assertEqual(options.startGrace, 7.5)
            self.assertTrue(options["json"])

    def test_flags(self) -> None:
        """
        Every flag of L{ClientSettings} (its C{bool} fields) that is set
        reaches the shards: their parsed settings have it set too.
        """
        flags = [f.name for f in fields(ClientSettings) if f.type in ("bool", bool)]
        self.assertIn("plain", flags)
        for name in flags:
            flag: dict[str, Any] = {name: True}
            whole = replace(ClientSettings(connections=2, duration=1.0), **flag)
            options = command._Options()
            options.parseOptions(shardArgv(whole, 0, 2, 1234.5, "abc"))
            self.assertIs(getattr(options.settings, name), True, name)


class LocalShardsTests(SynchronousTestCase):
    """
    N shard processes, one progress line, one merged report.
    """

    def setUp(self) -> None:
        self.reactor = ProcessReactor()
        self.reactor.advance(1000)
        self.out = io.BytesIO()
        self.err = io.StringIO()
        self.shards = LocalShards(
            self.reactor, WHOLE, 3, self.out, self.err, live=False, reap=False
        )
        self.ended = self.shards.start()

    def end(self, index: int, reason: Exception | None = None) -> None:
        protocol = self.reactor.spawned[index][0]
        protocol.processEnded(Failure(reason or ProcessDone(0)))

    def test_spawns(self) -> None:
        """
        Each shard is this command with C{--shard I/N}, one C{--start-at}
        L{lead} seconds ahead, as much again of C{--start-grace}, one run
        identity, and C{--json}.
        """
        self.assertEqual(len(self.reactor.spawned), 3)
        at = 1000 + lead(3)
        runId = runIdentity(WHOLE, 3, at)
        for index, (_, args, _) in enumerate(self.reactor.spawned):
            self.assertIn(
                f"--shard {index}/3 --start-at {at!r} --start-grace {lead(3)!r} "
                f"--run-id {runId} --json",
                " ".join(args),
            )

    def test_leadGrowsWithShards(self) -> None:
        """
        The more shards, the more time they are given to come up: each one
        more is half a second more.
        """
        self.assertEqual(lead(16) - lead(2), 7.0)
        self.assertGreaterEqual(lead(1), 2.0)

    def test_startGiven(self) -> None:
        """
        A C{--start-at} given is the shards', with the grace given, or by
        default a shard's 1 s.
        """
        for grace, expected in ((None, 1.0), (30.0, 30.0)):
            reactor = ProcessReactor()
            LocalShards(
                reactor, WHOLE, 2, self.out, self.err, live=False, reap=False,
                startAt=5000.0, startGrace=grace,
            ).start()  # fmt: skip
            for _, args, _ in reactor.spawned:
                self.assertIn(f"--start-at 5000.0 --start-grace {expected!r}", " ".join(args))

    def test_mergedProgressAndReport(self) -> None:
        """
        The shards' interval records make one progress line (their sums);
        their summaries one report of the whole run, and its status.
        """
        for step in (lead(3), 0.5, 0.7):
            self.reactor.advance(step)
        for protocol, _, _ in self.reactor.spawned:
            protocol.outReceived(b'{"type": "start"}\n' + interval())
        self.reactor.advance(0.3)
        self.assertEqual(
            self.err.getvalue().splitlines(),
            [
                "starting in 4 s",
                "starting in 3 s",
                "starting in 2 s",
                "starting in 1 s",
                "[   1s]  measuring   9 conns  450 msg/s  0.03 MB/s  0 errors  3 shards",
            ],
        )
        for index, (protocol, _, _) in enumerate(self.reactor.spawned):
            line = shardLine(index, 3, [1000] * 100).encode()
            protocol.outReceived(line[:50])
            protocol.outReceived(line[50:] + b"\n")
            protocol.errReceived(b"[   2s]  stopping ...\n")
            self.end(index)
        self.assertEqual(self.successResultOf(self.ended), 0)
        self.assertIn("300 sent, 300 verified, 0 failed, 0 lost", self.out.getvalue().decode())
        self.assertEqual(len(self.err.getvalue().splitlines()), 5)  # no more than above

    def test_keepsOnlySummaries(self) -> None:
        """
        Of a shard's standard output only its summary (named by its line)
        and its last interval record are kept: after 10,000 interval
        records and other lines, no list or bytes it holds is longer than
        one record.
        """
        protocol = self.reactor.spawned[0][0]
        protocol.outReceived(b'{"type": "start"}\n')
        for second in range(10_000):
            protocol.outReceived(interval(elapsed_s=float(second)))
        summary = shardLine(0, 3, [1000] * 10).encode() + b"\n"
        protocol.outReceived(b"log\n" + summary)
        held = [v for v in vars(protocol).values() if isinstance(v, (list, bytes))]
        self.assertTrue(
            all(len(v) <= 1 for v in held if isinstance(v, list)), [len(v) for v in held]
        )
        self.assertTrue(all(len(v) < len(summary) for v in held if isinstance(v, bytes)))
        [found] = protocol.summaries
        self.assertEqual(found.where, "shard 0 line 10003")
        self.assertEqual(protocol.interval["elapsed_s"], 9999.0)

    def test_deadShard(self) -> None:
        """
        A shard that dies without a summary is named, and the run fails,
        after the report of the shards that did finish.
        """
        for index in range(2):
            protocol = self.reactor.spawned[index][0]
            protocol.outReceived(shardLine(index, 3, [1000] * 10).encode() + b"\n")
            self.end(index)
        self.end(2, ProcessTerminated(signal=9))
        self.assertEqual(self.successResultOf(self.ended), 1)
        self.assertIn("20 sent, 20 verified", self.out.getvalue().decode())
        self.assertEqual(
            self.err.getvalue().splitlines()[-1],
            "uppercase-client: shard 2 was killed by SIGKILL without a summary",
        )

    def test_shardSays(self) -> None:
        """
        A shard's own error line is passed on, naming the shard.
        """
        protocol = self.reactor.spawned[1][0]
        protocol.errReceived(b"uppercase-client: cannot connect to tcp:127.0.0.1:9527: Connection")
        protocol.errReceived(b" refused\n")
        self.assertEqual(
            self.err.getvalue().splitlines()[-1],
            "uppercase-client: shard 1: cannot connect to tcp:127.0.0.1:9527: Connection refused",
        )

    def test_interrupt(self) -> None:
        """
        A signal is passed on to every shard as SIGTERM; what they report is
        merged and reported, and the status is 128 + the signal's number.
        """
        self.shards.interrupt(2)
        self.assertEqual([p.signals for _, _, p in self.reactor.spawned], [["TERM"]] * 3)
        for index, (protocol, _, _) in enumerate(self.reactor.spawned):
            line = shardLine(index, 3, [1000] * 5, interrupted=15, status=143)
            protocol.outReceived(line.encode() + b"\n")
            self.end(index, ProcessTerminated(143))
        self.assertEqual(self.successResultOf(self.ended), 130)
        self.assertIn("15 sent, 15 verified", self.out.getvalue().decode())
        self.assertEqual(
            self.err.getvalue().splitlines()[-1], "uppercase-client: interrupted by SIGINT"
        )
        self.assertEqual(self.reactor.getDelayedCalls(), [])
