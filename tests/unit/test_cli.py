"""The uppercase-client command, on a memory reactor."""

from __future__ import annotations

import io
import sys

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionRefusedError, DNSLookupError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from uppercase import _client_cli


class BytesStdout(io.StringIO):
    """
    A stand-in for C{sys.stdout} with a binary C{buffer}.
    """

    def __init__(self) -> None:
        super().__init__()
        self.buffer = io.BytesIO()


class ShutdownReactor(MemoryReactorClock):
    """
    A memory reactor whose system event triggers can be removed and fired.
    """

    def addSystemEventTrigger(self, phase, eventType, f, *args, **kw):  # type: ignore[no-untyped-def,override]
        entry = (f, args, kw)
        self.triggers.setdefault(phase, {}).setdefault(eventType, []).append(entry)
        return (phase, eventType, entry)

    def removeSystemEventTrigger(self, triggerID):  # type: ignore[no-untyped-def]
        phase, eventType, entry = triggerID
        self.triggers[phase][eventType].remove(entry)

    def shutDown(self) -> list[object]:
        """
        Run the "before shutdown" triggers, as Ctrl-C would.
        """
        return [f(*a, **kw) for f, a, kw in self.triggers.get("before", {}).get("shutdown", [])]


class ClientCommandTests(SynchronousTestCase):
    """
    The command prints every reply and exits 0 on success; otherwise one
    line on standard error and a non-zero status.
    """

    def setUp(self) -> None:
        self.stdout = BytesStdout()
        self.stderr = io.StringIO()
        self.patch(sys, "stdout", self.stdout)
        self.patch(sys, "stderr", self.stderr)
        self.reactor = ShutdownReactor()

    def command(self, *argv: str):
        return _client_cli.main(self.reactor, *argv)

    def connecting(self):
        host, port, factory, timeout, bind = self.reactor.tcpClients[-1]
        return factory

    def test_success(self) -> None:
        """
        Replies are printed as they arrive, and the run succeeds once the
        last one verified and the connection closed.
        """
        d = self.command("-n", "2", "-i", "0")
        protocol = self.connecting().buildProtocol(IPv4Address("TCP", "127.0.0.1", 9527))
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(b"HELLO\n")
        self.reactor.advance(0)
        protocol.dataReceived(b"HEL")
        protocol.dataReceived(b"LO\n")
        self.assertEqual(self.stdout.buffer.getvalue(), b"HELLO\nHELLO\n")
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.stderr.getvalue(), "")

    def exchange(self, *argv: str, replies: list[bytes]):  # type: ignore[no-untyped-def]
        d = self.command(*argv)
        protocol = self.connecting().buildProtocol(None)
        protocol.makeConnection(StringTransport())
        for reply in replies:
            self.reactor.advance(0.002)
            protocol.dataReceived(reply)
            self.reactor.advance(0)
        protocol.connectionLost(Failure(ConnectionDone()))
        return d

    def test_summaryLikePing(self) -> None:
        """
        After the last reply comes a summary: counts, and round-trip min,
        average, max and mean deviation in milliseconds.
        """
        d = self.exchange("-n", "2", "-i", "0", replies=[b"HELLO\n", b"HELLO\n"])
        self.successResultOf(d)
        lines = self.stdout.buffer.getvalue().decode().splitlines()
        self.assertEqual(
            lines,
            [
                "HELLO",
                "HELLO",
                "2 sent, 2 received, 2 verified, rtt min/avg/max/mdev = 2.000/2.000/2.000/0.000 ms",
            ],
        )

    def test_rtt(self) -> None:
        """
        C{--rtt} shows each reply's sequence number and round-trip time.
        """
        self.exchange("--rtt", "-n", "1", replies=[b"HELLO\n"])
        first = self.stdout.buffer.getvalue().decode().splitlines()[0]
        self.assertEqual(first, "HELLO  seq=1 time=2.000 ms")

    def test_json(self) -> None:
        """
        C{--json} prints a JSON object per reply and a summary object; a
        failed run says so in the summary (a wrong reply that arrived in full
        counts as received, not verified), and still exits 1.
        """
        import json

        d = self.exchange("--json", "-n", "3", "-i", "0", replies=[b"HELLO\n", b"HELLx\n"])
        self.assertEqual(self.failureResultOf(d, SystemExit).value.code, 1)
        records = [json.loads(line) for line in self.stdout.buffer.getvalue().splitlines()]
        self.assertEqual(
            records[0],
            {"type": "reply", "seq": 1, "bytes": 6, "rtt_ms": 2.0, "reply": "HELLO\n"},
        )
        summary = records[-1]
        self.assertEqual(len(records), 2)
        self.assertEqual(
            (
                summary["type"],
                summary["sent"],
                summary["received"],
                summary["verified"],
                summary["ok"],
            ),
            ("summary", 2, 2, 1, False),
        )
        self.assertIn("does not match", summary["error"])

    def test_interruptEndsCleanly(self) -> None:
        """
        Ctrl-C during a forever run closes the connection cleanly and the run
        ends successfully, once the connection is gone.
        """
        d = self.command("-n", "0")
        protocol = self.connecting().buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(b"HELLO\n")
        self.reactor.shutDown()
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected, "aborted instead of closed")
        self.assertNoResult(d)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.reactor.triggers["before"]["shutdown"], [])
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_connectionRefused(self) -> None:
        """
        A refused connection says C{Connection refused} in one line and
        exits 1.
        """
        d = self.command()
        self.connecting().clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        failure = self.failureResultOf(d, SystemExit)
        self.assertEqual(failure.value.code, 1)
        self.assertEqual(
            self.stderr.getvalue(),
            "uppercase-client: cannot connect to tcp:127.0.0.1:9527: Connection refused\n",
        )

    def test_otherConnectError(self) -> None:
        """
        Other connection errors are reported in one line too.
        """
        d = self.command("-c", "tcp:nowhere.invalid:9527")
        self.connecting().clientConnectionFailed(None, Failure(DNSLookupError("nowhere.invalid")))
        self.failureResultOf(d, SystemExit)
        [line] = self.stderr.getvalue().splitlines()
        self.assertIn("cannot connect to tcp:nowhere.invalid:9527", line)

    def test_mismatchExits1(self) -> None:
        """
        A wrong reply is reported and exits 1.
        """
        d = self.command()
        protocol = self.connecting().buildProtocol(None)
        protocol.makeConnection(StringTransport())
        protocol.dataReceived(b"hello\n")
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.failureResultOf(d, SystemExit).value.code, 1)
        self.assertIn("does not match", self.stderr.getvalue())

    def test_ipv6Bracketed(self) -> None:
        """
        C{--connect tcp:[::1]:9527} connects to ::1 port 9527.
        """
        self.command("-c", "tcp:[::1]:9527")
        host, port, factory, timeout, bind = self.reactor.tcpClients[-1]
        self.assertEqual((host, port), ("::1", 9527))

    def test_usageError(self) -> None:
        """
        A bad option exits 2 with the error and a hint, before connecting.
        """
        error = self.assertRaises(SystemExit, self.command, "--count", "-3")
        self.assertEqual(error.code, 2)
        self.assertIn("--count must be at least 0", self.stderr.getvalue())
        self.assertEqual(self.reactor.tcpClients, [])
