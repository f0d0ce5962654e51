"""The uppercase-client command, on a memory reactor."""

from __future__ import annotations

import io
import json
import signal
import sys
from typing import Any, Callable

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionRefusedError, DNSLookupError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from uppercase.cli import command as command
from uppercase.client import STOP_GRACE, UppercaseClientProtocol


class BytesStdout(io.TextIOWrapper):
    """
    A stand-in for C{sys.stdout} with a binary C{buffer} whose bytes can be
    read back.
    """

    buffer: io.BytesIO

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8", write_through=True)

    def getvalue(self) -> str:
        """
        Everything written, as text.
        """
        return self.buffer.getvalue().decode()


class _FailingBuffer(io.BytesIO):
    """
    A binary standard output whose writes fail with C{error} (a closed
    pipe, a full disk), and which has no file descriptor (as L{io.BytesIO}).
    """

    def __init__(self, error: OSError) -> None:
        super().__init__()
        self.error = error

    def write(self, data: Any) -> int:
        raise self.error


class FailingStdout(BytesStdout):
    """
    A stand-in for C{sys.stdout} whose binary C{buffer} cannot be written.
    """

    def __init__(self, error: OSError) -> None:
        io.TextIOWrapper.__init__(self, _FailingBuffer(error), encoding="utf-8")


CLOSED_PIPE = BrokenPipeError(32, "Broken pipe")
FULL_DISK = OSError(28, "No space left on device")


class ClientCommandTests(SynchronousTestCase):
    """
    The command prints every reply and ends with status 0 when every reply
    verified; otherwise one line on standard error and status 1 (2 for a
    usage error, 128 + N when interrupted by signal N).
    """

    def setUp(self) -> None:
        self.stdout = BytesStdout()
        self.stderr = io.StringIO()
        self.patch(sys, "stdout", self.stdout)
        self.patch(sys, "stderr", self.stderr)
        self.reactor = MemoryReactorClock()

    def command(self, *argv: str) -> Deferred[int]:
        self.clientRun = command.prepare(self.reactor, list(argv))
        return self.clientRun.start()

    def connecting(self) -> Any:
        host, port, factory, timeout, bind = self.reactor.tcpClients[-1]
        return factory

    def connect(self) -> tuple[UppercaseClientProtocol, StringTransport]:
        """
        Complete the pending connection attempt.
        """
        protocol = self.connecting().buildProtocol(IPv4Address("TCP", "127.0.0.1", 9527))
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def output(self) -> list[str]:
        return self.stdout.buffer.getvalue().decode().splitlines()

    def test_success(self) -> None:
        """
        Replies are printed as they arrive, and the run ends with status 0
        once the last one verified and the connection closed; no timer is
        left.
        """
        d = self.command("-n", "2", "-i", "0")
        protocol, transport = self.connect()
        protocol.dataReceived(b"HELLO\n")
        self.reactor.advance(0)
        protocol.dataReceived(b"HEL")
        protocol.dataReceived(b"LO\n")
        self.assertEqual(self.stdout.buffer.getvalue(), b"HELLO\nHELLO\n")
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.successResultOf(d), 0)
        self.assertEqual(self.stderr.getvalue(), "")
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_closedPipeEndsAtOnce(self) -> None:
        """
        When the first reply cannot be printed because standard output is a
        closed pipe, the run ends at once (not after its 30 replies): the
        connection is aborted, and the status is 141 (as SIGPIPE ends
        C{cat}), with nothing on standard error.
        """
        self.patch(sys, "stdout", FailingStdout(CLOSED_PIPE))
        d = self.command("-n", "30", "-i", "1", "--json")
        protocol, transport = self.connect()
        protocol.dataReceived(b"HELLO\n")
        self.reactor.advance(0)
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.successResultOf(d), 141)
        self.assertEqual(self.stderr.getvalue(), "")
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_fullDiskIsOneLine(self) -> None:
        """
        When standard output cannot be written for another reason (a full
        disk), the run ends at once with one line saying so and status 1.
        """
        self.patch(sys, "stdout", FailingStdout(FULL_DISK))
        d = self.command("-n", "30", "-i", "1")
        protocol, transport = self.connect()
        protocol.dataReceived(b"HELLO\n")
        self.reactor.advance(0)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.successResultOf(d), 1)
        self.assertEqual(
            self.stderr.getvalue(),
            "uppercase-client: cannot write the output: No space left on device\n",
        )

    def test_tlsHandshakeFailed(self) -> None:
        """
        A connection whose TLS handshake failed says what failed, in words,
        and that nothing was sent (the message never left the TLS layer).
        """
        from uppercase.client._tls import CertificateRejected

        d = self.command("-n", "1")
        protocol, transport = self.connect()
        self.assertEqual(transport.value(), b"hello\n")
        reason = CertificateRejected("untrusted certificate", "it is self-signed")
        protocol.connectionLost(Failure(reason))
        self.assertEqual(self.successResultOf(d), 1)
        self.assertEqual(self.output(), ["0 sent, 0 received, 0 verified"])
        self.assertEqual(
            self.stderr.getvalue(),
            "uppercase-client: TLS handshake failed: untrusted certificate: it is self-signed\n",
        )

    def exchange(self, *argv: str, replies: list[bytes]) -> Deferred[int]:
        d = self.command(*argv)
        protocol, transport = self.connect()
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
        self.assertEqual(self.successResultOf(d), 0)
        self.assertEqual(
            self.output(),
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
        self.assertEqual(self.output()[0], "HELLO  seq=1 time=2.000 ms")

    def test_json(self) -> None:
        """
        C{--json} prints a JSON object per reply and a summary object; a
        failed run says so in the summary (a wrong reply that arrived in full
        counts as received, not verified), and still ends with status 1.
        """
        d = self.exchange("--json", "-n", "3", "-i", "0", replies=[b"HELLO\n", b"HELLx\n"])
        self.assertEqual(self.successResultOf(d), 1)
        records = [json.loads(line) for line in self.output()]
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

    def test_sigintWhileWaitingForAReply(self) -> None:
        """
        SIGINT while a reply is awaited closes the connection cleanly; once
        it is gone the summary is printed, standard error says the run was
        interrupted, and the status is 130; no timer is left.
        """
        d = self.command("-n", "0")
        protocol, transport = self.connect()
        self.clientRun.interrupt(signal.SIGINT)
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected, "aborted instead of closed")
        self.assertNoResult(d)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.successResultOf(d), 130)
        self.assertEqual(self.output(), ["1 sent, 0 received, 0 verified"])
        self.assertEqual(self.stderr.getvalue(), "uppercase-client: interrupted by SIGINT\n")
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_sigtermBetweenReplies(self) -> None:
        """
        SIGTERM during the interval after a verified reply: status 143, and
        the summary counts that reply.
        """
        d = self.command("-n", "5")
        protocol, transport = self.connect()
        protocol.dataReceived(b"HELLO\n")
        self.clientRun.interrupt(signal.SIGTERM)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.successResultOf(d), 143)
        self.assertTrue(self.output()[-1].startswith("1 sent, 1 received, 1 verified, rtt "))
        self.assertEqual(self.stderr.getvalue(), "uppercase-client: interrupted by SIGTERM\n")

    def test_interruptWhileConnecting(self) -> None:
        """
        SIGINT before the connection is made cancels the attempt; the
        summary shows nothing sent, and the status is 130.
        """
        d = self.command()
        self.clientRun.interrupt(signal.SIGINT)
        self.assertTrue(self.reactor.connectors[-1].stoppedConnecting)
        self.assertEqual(self.successResultOf(d), 130)
        self.assertEqual(self.output(), ["0 sent, 0 received, 0 verified"])
        self.assertEqual(self.stderr.getvalue(), "uppercase-client: interrupted by SIGINT\n")
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_secondInterruptAbortsAtOnce(self) -> None:
        """
        A second signal while the connection is closing aborts it at once;
        the status stays that of the first signal.
        """
        d = self.command("-n", "0")
        protocol, transport = self.connect()
        self.clientRun.interrupt(signal.SIGINT)
        self.assertFalse(transport.disconnected)
        self.clientRun.interrupt(signal.SIGTERM)
        self.assertTrue(transport.disconnected)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.successResultOf(d), 130)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_interruptIsBounded(self) -> None:
        """
        If the server does not let the connection close, it is aborted
        C{STOP_GRACE} seconds after the signal.
        """
        d = self.command("-n", "0")
        protocol, transport = self.connect()
        self.clientRun.interrupt(signal.SIGINT)
        self.reactor.advance(STOP_GRACE)
        self.assertTrue(transport.disconnected)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.successResultOf(d), 130)

    def test_signalAfterTheEndChangesNothing(self) -> None:
        """
        A signal handled after the run ended is ignored: the status stays
        0 and nothing more is printed.
        """
        d = self.exchange("-n", "1", replies=[b"HELLO\n"])
        self.clientRun.interrupt(signal.SIGINT)
        self.assertEqual(self.successResultOf(d), 0)
        self.assertEqual(len(self.output()), 2)
        self.assertEqual(self.stderr.getvalue(), "")

    def test_failureBeforeInterruptKeepsStatus1(self) -> None:
        """
        A wrong reply whose connection is still closing when a signal
        arrives is reported as the wrong reply, with status 1.
        """
        d = self.command()
        protocol, transport = self.connect()
        protocol.dataReceived(b"hello\n")
        self.clientRun.interrupt(signal.SIGINT)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.successResultOf(d), 1)
        self.assertIn("does not match", self.stderr.getvalue())

    def test_connectionRefused(self) -> None:
        """
        A refused connection says C{Connection refused} in one line, after
        the summary, and ends with status 1.
        """
        d = self.command()
        self.connecting().clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        self.assertEqual(self.successResultOf(d), 1)
        self.assertEqual(
            self.stderr.getvalue(),
            "uppercase-client: cannot connect to tcp:127.0.0.1:9527: Connection refused\n",
        )
        self.assertEqual(self.output(), ["0 sent, 0 received, 0 verified"])
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_otherConnectError(self) -> None:
        """
        Other connection errors are reported in one line too.
        """
        d = self.command("-c", "tcp:nowhere.invalid:9527")
        self.connecting().clientConnectionFailed(None, Failure(DNSLookupError("nowhere.invalid")))
        self.assertEqual(self.successResultOf(d), 1)
        [line] = self.stderr.getvalue().splitlines()
        self.assertIn("cannot connect to tcp:nowhere.invalid:9527", line)

    def test_connectTimesOut(self) -> None:
        """
        C{--timeout} bounds the connection attempt: after that long the
        attempt is cancelled, standard error says it timed out and after
        how long, and the status is 1.
        """
        d = self.command("-t", "2")
        self.reactor.advance(1.999)
        self.assertNoResult(d)
        self.reactor.advance(0.001)
        self.assertTrue(self.reactor.connectors[-1].stoppedConnecting)
        self.assertEqual(self.successResultOf(d), 1)
        self.assertEqual(
            self.stderr.getvalue(),
            "uppercase-client: cannot connect to tcp:127.0.0.1:9527: timed out after 2s\n",
        )
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_connectTimeoutEndsWithConnection(self) -> None:
        """
        Once connected, the connection attempt's time limit no longer
        applies: connecting in 1.5s and a reply 1.5s later, with C{-t 2},
        verifies.
        """
        d = self.command("-t", "2", "-n", "1")
        self.reactor.advance(1.5)
        protocol, transport = self.connect()
        self.reactor.advance(1.5)
        protocol.dataReceived(b"HELLO\n")
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.successResultOf(d), 0)

    def test_connectErrorFromTheReactor(self) -> None:
        """
        An endpoint that cannot even start connecting (here the reactor
        raises, as C{callLater} does for a negative timeout) is one line on
        standard error and status 1.
        """

        def refuse(*args: object, **kwargs: object) -> None:
            raise ValueError("port must be 0-65535")

        self.patch(self.reactor, "connectTCP", refuse)
        d = self.command()
        self.assertEqual(self.successResultOf(d), 1)
        self.assertEqual(
            self.stderr.getvalue(),
            "uppercase-client: cannot connect to tcp:127.0.0.1:9527: port must be 0-65535\n",
        )

    def test_mismatchExits1(self) -> None:
        """
        A wrong reply is reported and ends with status 1.
        """
        d = self.command()
        protocol, transport = self.connect()
        protocol.dataReceived(b"hello\n")
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.successResultOf(d), 1)
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
        A bad option ends with status 2, the error and a hint, before
        connecting.
        """
        status = command.execute(self.reactor, ["--count", "-3"])
        self.assertEqual(status, 2)
        self.assertEqual(
            self.stderr.getvalue(),
            "uppercase-client: --count must be at least 0, not '-3'\n"
            "Try 'uppercase-client --help' for help.\n",
        )
        self.assertEqual(self.reactor.tcpClients, [])

    def test_version(self) -> None:
        """
        C{--version} prints uppercase's version, not Twisted's, and exits 0.
        """
        from uppercase import __version__

        error = self.assertRaises(SystemExit, command.prepare, self.reactor, ["--version"])
        self.assertEqual(error.code, 0)
        self.assertTrue(self.stdout.getvalue().startswith(f"uppercase {__version__} (Twisted "))


class FakeThreadReactor:
    """
    Records C{callFromThread}.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[Callable[..., object], tuple[object, ...]]] = []

    def callFromThread(self, f: Callable[..., object], *args: object) -> None:
        self.calls.append((f, args))


class InterruptHandlerTests(SynchronousTestCase):
    """
    The command's own SIGINT and SIGTERM handlers pass the signal's number
    to the run, in the reactor thread.
    """

    def test_handlersForSigintAndSigterm(self) -> None:
        """
        Handlers are installed for SIGINT and SIGTERM; each hands its
        signal's number to C{interrupt} through C{callFromThread}.
        """
        installed: dict[int, Callable[[int, object], None]] = {}
        reactor = FakeThreadReactor()
        received: list[int] = []

        def install(signum: int, handler: Callable[[int, object], None]) -> None:
            installed[signum] = handler

        command.installInterruptHandlers(
            reactor, received.append, install, lambda signum: signal.SIG_DFL
        )
        self.assertEqual(sorted(installed), sorted([signal.SIGINT, signal.SIGTERM]))
        installed[signal.SIGTERM](signal.SIGTERM, None)
        installed[signal.SIGINT](signal.SIGINT, None)
        self.assertEqual(received, [])
        for f, args in reactor.calls:
            f(*args)
        self.assertEqual(received, [signal.SIGTERM, signal.SIGINT])

    def test_ignoredSignalStaysIgnored(self) -> None:
        """
        A signal ignored when the command starts (SIGINT for a shell's
        background job) gets no handler; the other one does.
        """
        installed: list[int] = []
        ignored = {signal.SIGINT: signal.SIG_IGN, signal.SIGTERM: signal.SIG_DFL}
        command.installInterruptHandlers(
            FakeThreadReactor(),
            lambda signum: None,
            lambda signum, handler: installed.append(signum),
            lambda signum: ignored[signal.Signals(signum)],
        )
        self.assertEqual(installed, [signal.SIGTERM])
