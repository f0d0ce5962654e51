"""
C{uppercase-client} and C{twistd uppercase-client} in load mode, on a
memory reactor: the options and the exit statuses.
"""

from __future__ import annotations

import io
import json
import os
import sys

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from tests.unit.cli.test_command import CLOSED_PIPE, FULL_DISK, BytesStdout, FailingStdout
from uppercase.cli import client as twistdClient
from uppercase.cli import command as command
from uppercase.cli.loadcommand import LoadCommand
from uppercase.client._settings import ClientSettings
from uppercase.load.shard import INDEX_VARIABLE, runIdentity, shardSeed
from uppercase.testing import StreamTransport, asciiUpper


def parse(*argv: str) -> ClientSettings:
    options = twistdClient.ClientOptions()
    options.parseOptions(list(argv))
    return options.settings


class LoadOptionsTests(SynchronousTestCase):
    """
    Load options are settings: checked, converted, and any of them makes a
    load run; the ping-like defaults are untouched.
    """

    def test_defaultsArePingLike(self) -> None:
        """
        With no load option the settings are not a load run.
        """
        self.assertFalse(parse().isLoad)
        self.assertFalse(parse("-n", "3", "-m", "hi", "--send-proxy", "v2").isLoad)

    def test_anyLoadOptionMakesALoadRun(self) -> None:
        """
        Each load option, given alone, makes a load run.
        """
        for argv in (
            ["--connections", "2"],
            ["--pipeline", "8"],
            ["--rate", "100"],
            ["--duration", "5"],
            ["--warmup", "1"],
            ["--size", "100"],
            ["--payload", "text"],
            ["--seed", "4"],
            ["--stream"],
            ["--fail-fast"],
            ["--max-p99", "5"],
            ["--min-rate", "10"],
            ["--metrics", "tcp:0"],
        ):
            self.assertTrue(parse(*argv).isLoad, argv)

    def test_loadOptionAtItsDefaultMakesALoadRun(self) -> None:
        """
        A load option given at its default value makes a load run too, as
        the README promises of any load option.
        """
        for argv in (
            ["--connections", "1"],
            ["--connections=1"],
            ["--pipeline", "0"],
            ["--rate", "0"],
            ["--size", "64"],
            ["--payload", "random"],
            ["--seed", "0"],
            ["--max-p99", "off"],
            ["--metrics", "off"],
        ):
            self.assertTrue(parse(*argv).isLoad, argv)

    def test_values(self) -> None:
        """
        Values are converted to the settings' types.
        """
        settings = parse(
            "--connections=100",
            "--pipeline=8",
            "--rate=2.5e3",
            "--duration=10",
            "--warmup=2",
            "--size=1024",
            "--payload=TEXT",
            "--seed=9",
            "--send-proxy=V1",
            "--max-p99=1.5",
            "--min-rate=100",
            "--fail-fast",
        )
        self.assertEqual(
            (settings.connections, settings.pipeline, settings.rate, settings.size),
            (100, 8, 2500.0, 1024),
        )
        self.assertEqual((settings.payload, settings.sendProxy), ("text", "v1"))
        self.assertEqual((settings.maxP99, settings.minRate, settings.failFast), (1.5, 100.0, True))
        self.assertEqual((settings.mode, settings.limit), ("open", 0))

    def test_badValues(self) -> None:
        """
        Each bad value is a usage error naming its option.
        """
        for argv, words in (
            (["--connections", "0"], "--connections must be at least 1"),
            (["--pipeline", "-1"], "--pipeline must be at least 0"),
            (["--rate", "fast"], "--rate must be a number per second"),
            (["--size", "0"], "--size must be at least 1"),
            (["--payload", "binary"], "--payload must be 'random' or 'text'"),
            (["--send-proxy", "v3"], "--send-proxy must be 'v1' or 'v2'"),
            (["--max-p99", "-2"], "--max-p99 must be a number of milliseconds"),
            (["--metrics", "nope:1"], "--metrics 'nope:1' is not a valid endpoint"),
            (["--stream", "--rate", "5"], "--stream sets its own pace"),
        ):
            with self.assertRaises(usage.UsageError) as caught:
                parse(*argv)
            self.assertIn(words, str(caught.exception), argv)

    def test_sendProxyNotOverTLS(self) -> None:
        """
        A PROXY header cannot go before a tls: endpoint's handshake: refused
        (checked on the settings, so that it holds without pyOpenSSL too).
        """
        with self.assertRaises(usage.UsageError) as caught:
            twistdClient.checkLoadSettings(ClientSettings(sendProxy="v2", connect="tls:h:1"))
        self.assertIn("before any TLS", str(caught.exception))

    def test_rttIsForPing(self) -> None:
        """
        C{--rtt} with a load option is a usage error (status 2).
        """
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        status = command.execute(MemoryReactorClock(), ["--rtt", "--connections", "2"])
        self.assertEqual(status, 2)
        self.assertIn("--rtt shows each reply of the ping-like client", stderr.getvalue())

    def test_modes(self) -> None:
        """
        Closed loop without --rate (pipeline 1 by default), open loop with
        it (no pipeline limit by default), stream with --stream.
        """
        self.assertEqual(
            (parse("--size", "9").mode, parse("--size", "9").effectivePipeline), ("closed", 1)
        )
        self.assertEqual(
            (parse("--rate", "9").mode, parse("--rate", "9").effectivePipeline), ("open", 0)
        )
        self.assertEqual(parse("--stream").mode, "stream")
        self.assertEqual(parse("--duration", "3").limit, 0)
        self.assertEqual(parse("--size", "3", "-n", "50").limit, 50)


class LoadCommandTests(SynchronousTestCase):
    """
    The command runs a load run and exits with an honest status.
    """

    def setUp(self) -> None:
        self.stdout = BytesStdout()
        self.stderr = io.StringIO()
        self.patch(sys, "stdout", self.stdout)
        self.patch(sys, "stderr", self.stderr)
        self.reactor = MemoryReactorClock()

    def command(self, *argv: str) -> Deferred[int]:
        run = command.prepare(self.reactor, list(argv))
        assert isinstance(run, LoadCommand), run
        self.loadCommand = run
        return run.start()

    def connect(self, index: int = -1) -> StreamTransport:
        host, port, factory, timeout, bind = self.reactor.tcpClients[index]
        protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
        transport = StreamTransport()
        transport.connect(protocol)  # type: ignore[arg-type]
        transport.answered = 0  # type: ignore[attr-defined]
        return transport

    def answer(self, transport: StreamTransport, wrong: bool = False) -> None:
        data = transport.value()
        new = data[transport.answered :]  # type: ignore[attr-defined]
        transport.answered = len(data)  # type: ignore[attr-defined]
        transport.receive(new if wrong else asciiUpper(new))

    def test_allVerified(self) -> None:
        """
        Two connections, 6 messages, all verified: status 0, the summary on
        standard output, nothing on standard error.
        """
        d = self.command("--connections", "2", "--count", "6")
        transports = [self.connect(0), self.connect(1)]
        for _ in range(3):
            for transport in transports:
                self.answer(transport)
        self.reactor.advance(0)
        self.assertEqual(self.successResultOf(d), 0)
        out = self.stdout.getvalue().splitlines()
        self.assertTrue(out[0].startswith("closed loop: 2 connections, pipeline 1"))
        self.assertTrue(out[1].startswith("6 sent, 6 verified, 0 failed, 0 lost"))
        self.assertEqual(self.stderr.getvalue(), "")

    def test_failureIsOneLine(self) -> None:
        """
        A wrong reply: status 1 and one line on standard error, naming the
        connection, message and offset.
        """
        d = self.command("--count", "1", "--payload", "text")
        self.answer(self.connect(), wrong=True)
        self.reactor.advance(0)
        self.assertEqual(self.successResultOf(d), 1)
        [line] = self.stderr.getvalue().splitlines()
        self.assertTrue(
            line.startswith(
                "uppercase-client: 1 wrong reply; first: connection 1, message 1, byte 0 "
                "(stream offset 0): expected 48, received 68"
            ),
            line,
        )

    def test_refused(self) -> None:
        """
        Nothing listening: the ping-like client's line, status 1.
        """
        from twisted.internet.error import ConnectionRefusedError
        from twisted.python.failure import Failure

        d = self.command("--connections", "1", "--size", "10")
        host, port, factory, timeout, bind = self.reactor.tcpClients[-1]
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))  # type: ignore[arg-type]
        self.assertEqual(self.successResultOf(d), 1)
        self.assertEqual(
            self.stderr.getvalue().splitlines()[-1],
            "uppercase-client: cannot connect to tcp:127.0.0.1:9527: Connection refused",
        )

    def test_interrupted(self) -> None:
        """
        SIGINT mid-run: the summary is printed and the status is 130.
        """
        d = self.command("--duration", "60", "--connections", "1")
        transport = self.connect()
        self.reactor.advance(1)
        self.loadCommand.interrupt(2)
        self.answer(transport)
        self.assertEqual(self.successResultOf(d), 130)
        self.assertIn("1 sent, 1 verified", self.stdout.getvalue())
        self.assertEqual(
            self.stderr.getvalue().splitlines()[-1], "uppercase-client: interrupted by SIGINT"
        )

    def test_progressOnStderr(self) -> None:
        """
        A progress line each second on standard error (plain lines: not a
        terminal).
        """
        self.command("--duration", "60", "--rate", "10")
        transport = self.connect()
        for _ in range(30):
            self.reactor.advance(0.1)
            self.answer(transport)
        lines = self.stderr.getvalue().splitlines()
        self.assertEqual(len(lines), 3)
        self.assertTrue(all(" msg/s " in line for line in lines), lines)
        self.loadCommand.interrupt(2)

    def test_json(self) -> None:
        """
        C{--json} prints JSON lines: start, then the summary.
        """
        d = self.command("--json", "--pipeline", "1", "--count", "2")
        transport = self.connect()
        self.answer(transport)
        self.answer(transport)
        self.reactor.advance(0)
        self.assertEqual(self.successResultOf(d), 0)
        records = [json.loads(line) for line in self.stdout.getvalue().splitlines()]
        self.assertEqual([r["type"] for r in records], ["start", "summary"])
        self.assertEqual(records[-1]["verified"], 2)

    def test_closedPipeEndsAtOnce(self) -> None:
        """
        When the C{start} line cannot be printed because standard output is
        a closed pipe, the run ends at once (not after its 60 seconds), its
        connection aborted, with status 141 and nothing on standard error.
        """
        self.patch(sys, "stdout", FailingStdout(CLOSED_PIPE))
        d = self.command("--json", "--duration", "60")
        transport = self.connect()
        self.reactor.advance(0)
        self.assertTrue(transport.disconnected)
        self.assertEqual(self.successResultOf(d), 141)
        self.assertEqual(self.stderr.getvalue(), "")

    def test_progressIntoClosedPipe(self) -> None:
        """
        When a progress line cannot be written because standard error is a
        closed pipe (C{2>&1 | head -1}), the run ends at once, its
        connection aborted, with status 141.
        """

        class ClosedStderr(io.StringIO):
            def write(self, text: str) -> int:
                raise CLOSED_PIPE

        self.patch(sys, "stderr", ClosedStderr())
        d = self.command("--duration", "60", "--rate", "10")
        transport = self.connect()
        for _ in range(12):
            self.reactor.advance(0.1)
            self.answer(transport)
        self.assertTrue(transport.disconnected)
        self.assertEqual(self.successResultOf(d), 141)

    def test_fullDiskIsOneLine(self) -> None:
        """
        When the summary cannot be written (a full disk), the status is 1
        and standard error says so in one line.
        """
        self.patch(sys, "stdout", FailingStdout(FULL_DISK))
        d = self.command("--pipeline", "1", "--count", "1")
        self.answer(self.connect())
        self.reactor.advance(0)
        self.assertEqual(self.successResultOf(d), 1)
        self.assertEqual(
            self.stderr.getvalue(),
            "uppercase-client: cannot write the output: No space left on device\n",
        )

    def test_metricsListened(self) -> None:
        """
        C{--metrics} listens on its endpoint for the run's length.
        """
        self.command("--metrics", "tcp:9123:interface=127.0.0.1", "--count", "1")
        [(port, factory, backlog, interface)] = self.reactor.tcpServers
        self.assertEqual((port, interface), (9123, "127.0.0.1"))
        self.answer(self.connect())
        self.reactor.advance(0)

    def test_metricsPortBusy(self) -> None:
        """
        A busy C{--metrics} port is one line, in the words the server uses
        for the same failure, and status 1.
        """

        def busy(*args: object, **kwargs: object) -> None:
            raise CannotListenError("127.0.0.1", 9123, OSError(98, "Address already in use"))

        self.patch(self.reactor, "listenTCP", busy)
        d = self.command("--metrics", "tcp:9123:interface=127.0.0.1", "--count", "1")
        self.assertEqual(self.successResultOf(d), 1)
        self.assertEqual(
            self.stderr.getvalue().splitlines()[-1],
            "uppercase-client: cannot listen for metrics on tcp:9123:interface=127.0.0.1: "
            "Address already in use",
        )


class ShardedCommandTests(SynchronousTestCase):
    """
    C{--shard}, C{--start-at} and C{--workers} on the command line: a
    shard runs its share and says so; a time not yet come is waited for on
    the reactor's clock, one passed is exit status 4; bad values are one
    line and status 2.
    """

    def setUp(self) -> None:
        self.stdout = BytesStdout()
        self.stderr = io.StringIO()
        self.patch(sys, "stdout", self.stdout)
        self.patch(sys, "stderr", self.stderr)
        self.reactor = MemoryReactorClock()

    def command(self, *argv: str) -> Deferred[int]:
        run = command.prepare(self.reactor, list(argv))
        assert isinstance(run, LoadCommand), run
        self.loadCommand = run
        return run.start()

    def connect(self, index: int = -1) -> StreamTransport:
        host, port, factory, timeout, bind = self.reactor.tcpClients[index]
        transport = StreamTransport()
        transport.connect(factory.buildProtocol(IPv4Address("TCP", host, port)))  # type: ignore[arg-type]
        return transport

    def answer(self, transport: StreamTransport) -> None:
        transport.receive(asciiUpper(transport.value()))

    def usageError(self, *argv: str) -> str:
        self.assertEqual(command.execute(self.reactor, list(argv)), 2)
        lines = self.stderr.getvalue().splitlines()
        self.assertEqual(lines[1:], ["Try 'uppercase-client --help' for help."])
        return lines[0]

    def setIndex(self, value: str | None) -> None:
        old = os.environ.pop(INDEX_VARIABLE, None)
        if value is not None:
            os.environ[INDEX_VARIABLE] = value

        def restore() -> None:
            os.environ.pop(INDEX_VARIABLE, None)
            if old is not None:
                os.environ[INDEX_VARIABLE] = old

        self.addCleanup(restore)

    def test_shardRunsItsShare(self) -> None:
        """
        C{--shard auto/3} with C{JOB_COMPLETION_INDEX=1} opens its share of
        the connections, sends its share of the messages with its own
        seed, and its summary names the run, the shard and its share.
        """
        self.setIndex("1")
        d = self.command("--shard", "auto/3", "--connections", "5", "--count", "7", "--json")
        transports = [self.connect(0), self.connect(1)]
        self.assertEqual(len(self.reactor.tcpClients), 2)
        for transport in transports:
            self.answer(transport)
        self.reactor.advance(0)
        self.assertEqual(self.successResultOf(d), 0)
        start, summary = (json.loads(line) for line in self.stdout.getvalue().splitlines())
        self.assertEqual(start["seed"], shardSeed(0, 1))
        self.assertEqual(summary["verified"], 2)
        self.assertEqual((summary["shard"], summary["shards"]), (1, 3))
        self.assertEqual(summary["share"], {"connections": 2, "rate": None, "count": 2})
        self.assertEqual(
            summary["run_id"], runIdentity(ClientSettings(connections=5, count=7), 3, None)
        )

    def test_shardErrors(self) -> None:
        """
        A missing or out-of-range index, a run too small to split, and
        C{--workers} with C{--shard} are one line each, status 2.
        """
        self.setIndex(None)
        self.assertEqual(
            self.usageError("--shard", "auto/3", "--connections", "3"),
            "uppercase-client: --shard auto/3 needs JOB_COMPLETION_INDEX, which is not set",
        )
        self.stderr.truncate(0)
        self.stderr.seek(0)
        self.setIndex("7")
        self.assertEqual(
            self.usageError("--shard", "auto/3", "--connections", "3"),
            "uppercase-client: JOB_COMPLETION_INDEX='7' is out of range: shards of 3 are 0 to 2",
        )
        for argv, line in (
            (
                ["--shard", "0/3", "--connections", "2"],
                "--shard 0/3 needs at least 3 connections (one per shard), not --connections 2",
            ),
            (
                ["--workers", "3", "--connections", "2"],
                "--workers 3 needs at least 3 connections (one per shard), not --connections 2",
            ),
            (
                ["--workers", "2", "--shard", "0/2", "--connections", "2"],
                "--workers runs shards of its own: it takes no --shard",
            ),
            (["--workers", "two"], "--workers must be a whole number of processes, not 'two'"),
            (
                ["--start-at", "tomorrow"],
                "--start-at must be Unix seconds or an RFC 3339 time such as "
                "2026-12-06T18:30:00Z, not 'tomorrow'",
            ),
            (
                ["--start-grace", "5"],
                "--start-grace is how late after --start-at a shard may start: give --start-at",
            ),
            (
                ["--start-at", "1003", "--start-grace", "-1"],
                "--start-grace must be 0 or more seconds, not '-1'",
            ),
        ):
            self.stderr.truncate(0)
            self.stderr.seek(0)
            self.assertEqual(self.usageError(*argv), "uppercase-client: " + line)

    def test_startAtWaits(self) -> None:
        """
        Before C{--start-at} nothing connects, and standard error says how
        long is left; at the time, the run starts.
        """
        self.reactor.advance(1000)
        d = self.command("--start-at", "1003", "--count", "1")
        self.assertEqual(self.reactor.tcpClients, [])
        self.reactor.advance(2.5)
        self.assertEqual(self.reactor.tcpClients, [])
        self.reactor.advance(0.5)
        self.answer(self.connect())
        self.reactor.advance(0)
        self.assertEqual(self.successResultOf(d), 0)
        self.assertEqual(
            self.stderr.getvalue().splitlines(),
            ["starting in 3 s", "starting in 2 s", "starting in 1 s"],
        )

    def test_tooLate(self) -> None:
        """
        Up after C{--start-at} and its second of grace: status 4, one line
        saying how late, and nothing connects.
        """
        self.reactor.advance(1000)
        d = self.command("--start-at", "1970-01-01T00:16:35Z", "--count", "1")
        self.assertEqual(self.successResultOf(d), 4)
        self.assertEqual(self.reactor.tcpClients, [])
        self.assertEqual(
            self.stderr.getvalue().splitlines(),
            [
                "uppercase-client: too late to start on time: came up 5.0 s after --start-at "
                "(a shard may start at most 1 s late)"
            ],
        )

    def test_lateWithinGraceGiven(self) -> None:
        """
        Up 5 s after C{--start-at} with C{--start-grace 10}: it starts at
        once; with C{--start-grace 2}, it does not, and says so.
        """
        self.reactor.advance(1000)
        d = self.command("--start-at", "995", "--start-grace", "10", "--count", "1")
        self.answer(self.connect())
        self.reactor.advance(0)
        self.assertEqual(self.successResultOf(d), 0)
        d = self.command("--start-at", "995", "--start-grace", "2", "--count", "1")
        self.assertEqual(self.successResultOf(d), 4)
        self.assertEqual(
            self.stderr.getvalue().splitlines()[-1],
            "uppercase-client: too late to start on time: came up 5.0 s after --start-at "
            "(a shard may start at most 2 s late)",
        )

    def test_interruptedWhileWaiting(self) -> None:
        """
        A signal while waiting ends the command with 128 + its number, one
        line, and no connection.
        """
        self.reactor.advance(1000)
        d = self.command("--start-at", "1060", "--count", "1")
        self.loadCommand.interrupt(2)
        self.assertEqual(self.successResultOf(d), 130)
        self.reactor.advance(100)
        self.assertEqual(self.reactor.tcpClients, [])
        self.assertEqual(
            self.stderr.getvalue().splitlines()[-1],
            "uppercase-client: interrupted by SIGINT before --start-at",
        )
