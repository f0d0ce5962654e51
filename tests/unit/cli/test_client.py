"""
The client's command-line layer: its settings and options, endpoint strings
and connecting, and the twistd service they build.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from twisted.application.internet import ClientService
from twisted.internet.address import IPv4Address
from twisted.internet.error import (
    ConnectionLost,
    ConnectionRefusedError,
    DNSLookupError,
)
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from tests.unit.cli.test_server import assertUsageErrorsName
from uppercase.cli import client as twistdClient
from uppercase.client._settings import ClientSettings

IPV6_HINT = r"write tcp:[::1]:9527 or tcp:host=\:\:1:port=9527"


class ClientOptionsTests(SynchronousTestCase):
    """
    Options shared by C{uppercase-client} and C{twistd uppercase-client},
    derived from L{ClientSettings}.
    """

    def parse(self, *argv: str) -> twistdClient.ClientOptions:
        options = twistdClient.ClientOptions()
        options.parseOptions(list(argv))
        return options

    def test_defaults(self) -> None:
        """
        The defaults are the reference's: C{hello} nine times, one second
        apart, to 127.0.0.1 port 9527.
        """
        options = self.parse()
        self.assertEqual(options["connect"], "tcp:127.0.0.1:9527")
        self.assertEqual(options["message"], b"hello")
        self.assertEqual(options["count"], 9)
        self.assertEqual(options["interval"], 1.0)
        self.assertEqual(options["timeout"], 10.0)

    def test_defaultsAreTheSettings(self) -> None:
        """
        With no options, the parsed settings are L{ClientSettings}'
        defaults.
        """
        self.assertEqual(self.parse().settings, ClientSettings())

    def test_optionsDerivedFromSettings(self) -> None:
        """
        There is one option per setting, in the same order (named as the
        setting says, e.g. C{--send-proxy} for C{sendProxy}), one flag per
        setting that is a flag, and the default each option's help shows,
        typed back on a command line, gives that setting's default.
        """
        names = [name for name, short, default, help in twistdClient.ClientOptions.optParameters]
        fields = dataclasses.fields(ClientSettings)
        self.assertEqual(
            names,
            [f.metadata["option"].name or f.name for f in fields if "option" in f.metadata],
        )
        flags = {name for name, short, help in twistdClient.ClientOptions.optFlags}
        self.assertEqual(
            {f.name for f in fields if "option" not in f.metadata},
            {"stream", "failFast", "load", "plain"},
        )
        self.assertEqual(flags, {"stream", "fail-fast", "plain"})
        for name, _short, shown, _help in twistdClient.ClientOptions.optParameters:
            settings = self.parse(f"--{name}", shown).settings
            # (A load option given, even at its default, says so: load.)
            self.assertEqual(dataclasses.replace(settings, load=False), ClientSettings())
            self.assertIn(f"[default: {shown}]", " ".join(self.parse().getUsage().split()))

    def test_values(self) -> None:
        """
        Values are converted: the message to UTF-8 bytes, numbers to
        numbers; the settings object holds them.
        """
        options = self.parse("-m", "héllo", "-n", "0", "-i", "0.25", "-t", "3", "-c", "unix:/u")
        self.assertEqual(
            options.settings,
            ClientSettings(
                connect="unix:/u",
                message="héllo".encode(),
                count=0,
                interval=0.25,
                timeout=3.0,
            ),
        )

    def test_badValues(self) -> None:
        """
        Bad values are usage errors naming the option; a zero timeout too,
        and endpoint strings that would fail only when connecting.
        """
        assertUsageErrorsName(
            self,
            self.parse,
            [
                ("--count", "-1"),
                ("--count", "many"),
                ("--interval", "-0.5"),
                ("--timeout", "0"),
                ("--connect", "nosuch:thing"),
                ("--connect", "tcp:127.0.0.1:9527:timeout=-1"),
                ("--connect", "tcp:127.0.0.1:99999"),
                ("--connect", "tcp:host=::1:port=9527"),
            ],
        )

    def test_negativeEndpointTimeout(self) -> None:
        """
        C{timeout=-1} in the endpoint string is refused while parsing, with
        a message naming it.
        """
        error = self.assertRaises(
            usage.UsageError, self.parse, "-c", "tcp:127.0.0.1:9527:timeout=-1"
        )
        self.assertEqual(
            str(error),
            "--connect 'tcp:127.0.0.1:9527:timeout=-1' is not a valid endpoint: "
            "timeout must be a whole number of seconds, 0 or more, not '-1'",
        )

    def test_unescapedIPv6SaysHowToWriteIt(self) -> None:
        """
        C{tcp:host=::1:port=9527} (which Twisted would read as host "" and
        port 1) is refused with the forms that work.
        """
        error = self.assertRaises(usage.UsageError, self.parse, "-c", "tcp:host=::1:port=9527")
        self.assertIn(IPV6_HINT, str(error))

    def test_bracketedIPv6Accepted(self) -> None:
        """
        C{tcp:[::1]:9527} and C{tcp:host=[::1]:port=9527} parse, and are
        kept as typed (messages show what the user wrote).
        """
        for connect in ("tcp:[::1]:9527", "tcp:host=[::1]:port=9527"):
            self.assertEqual(self.parse("-c", connect).settings.connect, connect)


class ClientServiceTests(SynchronousTestCase):
    """
    C{twistd uppercase-client} retries with backoff, logging each failure,
    and stops the reactor when done, with an exit status that says how.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.reactor.running = True
        # A running reactor has not stopped (Twisted 24.7's fake starts with
        # hasStopped true, which would make every check of it hold).
        self.reactor.hasStopped = False
        self.statuses: list[int] = []

    def makeService(self, *argv: str) -> twistdClient.RepeatingClientService:
        options = twistdClient.ClientOptions()
        options.parseOptions(["-c", "tcp:127.0.0.1:9527", *argv])
        service = twistdClient.makeService(
            options, reactor=self.reactor, exitStatus=self.statuses.append
        )
        assert isinstance(service, twistdClient.RepeatingClientService)
        self.service = service
        return service

    def connect(self) -> tuple[Any, StringTransport]:
        """
        Complete the latest connection attempt.
        """
        host, port, factory, timeout, bind = self.reactor.tcpClients[-1]
        protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
        assert protocol is not None
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def failAttempt(self, error: Exception) -> None:
        """
        Fail the latest connection attempt with C{error}.
        """
        factory = self.reactor.tcpClients[-1][2]
        factory.clientConnectionFailed(self.reactor.connectors[-1], Failure(error))

    def nextAttempt(self) -> None:
        """
        Advance the clock to the next call the service scheduled (its retry
        with backoff, however the installed Twisted spaces them), until a new
        attempt is made or nothing is scheduled.
        """
        attempts = len(self.reactor.tcpClients)
        while len(self.reactor.tcpClients) == attempts and self.reactor.getDelayedCalls():
            soonest = min(call.getTime() for call in self.reactor.getDelayedCalls())
            self.reactor.advance(max(soonest - self.reactor.seconds(), 0))

    def test_shape(self) -> None:
        """
        The service wraps a L{ClientService}; nothing connects before start.
        """
        self.makeService("-n", "1")
        self.assertIsInstance(self.service.clientService, ClientService)
        self.assertEqual(self.reactor.tcpClients, [])

    def test_failureLoggedAndRetried(self) -> None:
        """
        A refused connection is logged with its reason, and another attempt
        follows after a backoff delay.
        """
        self.makeService("-n", "1").startService()
        host, port, factory, timeout, bind = self.reactor.tcpClients[0]
        self.assertEqual((host, port), ("127.0.0.1", 9527))
        with capturedLogs() as events:
            factory.clientConnectionFailed(
                self.reactor.connectors[-1], Failure(ConnectionRefusedError())
            )
        [failed] = [e for e in events if e.get("log_level") == LogLevel.warn]
        self.assertEqual(
            formatEvent(failed), "Cannot connect to tcp:127.0.0.1:9527: Connection refused"
        )
        self.reactor.advance(10)
        self.assertEqual(len(self.reactor.tcpClients), 2)
        self.service.stopService()

    def test_finiteRunGivesUpOnRefusals(self) -> None:
        """
        With a finite --count, a port that keeps refusing is given up once
        attempts have failed for --timeout seconds: one line, status 1, no
        retry after it.
        """
        self.makeService("-n", "3", "-t", "5").startService()
        with capturedLogs() as events:
            for _ in range(20):
                if self.statuses:
                    break
                self.failAttempt(ConnectionRefusedError())
                self.nextAttempt()
        self.assertEqual(self.statuses, [1])
        [critical] = [e for e in events if e.get("log_level") == LogLevel.critical]
        self.assertRegex(
            formatEvent(critical),
            r"^Stopping: cannot connect to tcp:127.0.0.1:9527: Connection refused \(for [5-9] s\)$",
        )
        attempts = len(self.reactor.tcpClients)
        self.reactor.advance(60)
        self.assertEqual(len(self.reactor.tcpClients), attempts)

    def test_proberKeepsRetryingRefusals(self) -> None:
        """
        With --count 0 (a prober), a refusing port is retried for ever: the
        server may be restarting.
        """
        self.makeService("-n", "0", "-t", "5").startService()
        for _ in range(20):
            self.failAttempt(ConnectionRefusedError())
            self.reactor.advance(62)  # the longest backoff, 60 s, and its jitter
        self.assertEqual(self.statuses, [])
        self.assertEqual(len(self.reactor.tcpClients), 21)
        self.service.stopService()

    def test_unknownHostGivesUp(self) -> None:
        """
        A name that does not resolve can never connect: one line, status 1.
        """
        self.makeService("-n", "0").startService()
        self.failAttempt(DNSLookupError("nowhere.invalid"))
        self.reactor.advance(0)
        self.assertEqual(self.statuses, [1])
        self.assertEqual(len(self.reactor.tcpClients), 1)

    def test_doneStopsReactorWithStatus0(self) -> None:
        """
        Once every reply is verified the statistics are logged and the
        reactor is stopped, with no exit status set (twistd exits 0).
        """
        self.makeService("-n", "1").startService()
        protocol, transport = self.connect()
        with capturedLogs() as events:
            protocol.dataReceived(b"HELLO\n")
        self.assertTrue(self.reactor.hasStopped)
        self.assertEqual(self.statuses, [])
        self.assertIn("All 1 replies verified, rtt", formatEvent(events[-1]))
        self.service.stopService()

    def test_wrongReplyEndsWithStatus1AndNoRetry(self) -> None:
        """
        A wrong reply stops the reactor with exit status 1; after the
        "Stopping" line no retry is scheduled, and no connection attempt
        follows.
        """
        self.makeService("-n", "3").startService()
        protocol, transport = self.connect()
        with capturedLogs() as events:
            protocol.dataReceived(b"hello\n")
            protocol.connectionLost(Failure(ConnectionLost()))
        messages = [formatEvent(e) for e in events]
        [stopping] = [i for i, m in enumerate(messages) if m.startswith("Stopping: ")]
        self.assertIn("reply 1 does not match", messages[stopping])
        self.assertEqual([m for m in messages[stopping:] if "retry" in m], [])
        self.assertEqual(self.statuses, [1])
        self.assertTrue(self.reactor.hasStopped)
        self.reactor.advance(120)
        self.assertEqual(len(self.reactor.tcpClients), 1)
        self.service.stopService()

    def test_interruptLogsStatistics(self) -> None:
        """
        Stopping the service before the count is reached (Ctrl-C under
        twistd) closes the connection cleanly and logs how many replies
        were verified of how many, with their round-trip statistics.
        """
        self.makeService("-n", "9", "-i", "0").startService()
        protocol, transport = self.connect()
        for _ in range(2):
            self.reactor.advance(0.004)
            protocol.dataReceived(b"HELLO\n")
            self.reactor.advance(0)
        with capturedLogs() as events:
            stopped = self.service.stopService()
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected, "aborted instead of closed")
        [event] = events
        self.assertEqual(
            formatEvent(event),
            "Stopped: 2 of 9 replies verified, rtt min/avg/max/mdev = 4.000/4.000/4.000/0.000 ms",
        )
        self.assertEqual((event["verified"], event["count"]), (2, 9))
        with capturedLogs() as events:
            protocol.connectionLost(Failure(ConnectionLost()))
        self.successResultOf(stopped)
        self.assertEqual([e for e in events if e["log_level"] >= LogLevel.warn], [])
        self.assertEqual(self.statuses, [])

    def test_interruptEndlessRun(self) -> None:
        """
        For an endless run (C{--count 0}) the closing line gives the
        number of verified replies alone; before any reply it says so.
        """
        self.makeService("-n", "0").startService()
        with capturedLogs() as events:
            self.service.stopService()
        self.assertEqual(
            [formatEvent(e) for e in events], ["Stopped: 0 replies verified, no reply yet"]
        )

    def test_connectTimeoutLoggedAndRetried(self) -> None:
        """
        C{--timeout} bounds each connection attempt: one still pending after
        that long is cancelled, logged as timed out, and retried.
        """
        self.makeService("-t", "2").startService()
        with capturedLogs() as events:
            self.reactor.advance(2)
        self.assertTrue(self.reactor.connectors[0].stoppedConnecting)
        warnings = [formatEvent(e) for e in events if e["log_level"] == LogLevel.warn]
        self.assertEqual(warnings, ["Cannot connect to tcp:127.0.0.1:9527: timed out after 2s"])
        self.reactor.advance(120)
        self.assertGreaterEqual(len(self.reactor.tcpClients), 2)
        self.service.stopService()

    def test_unusableEndpointEndsWithStatus1(self) -> None:
        """
        A connection attempt that fails with something other than a network
        error (a value the endpoint only checks when connecting) stops the
        reactor with exit status 1 and one critical line; nothing retries.
        """

        def refuse(*args: object, **kwargs: object) -> None:
            raise OverflowError("port must be 0-65535")

        self.patch(self.reactor, "connectTCP", refuse)
        with capturedLogs() as events:
            self.makeService().startService()
            self.reactor.advance(0)
        self.assertEqual(
            [formatEvent(e) for e in events if e["log_level"] == LogLevel.critical],
            ["Stopping: cannot connect to tcp:127.0.0.1:9527: port must be 0-65535"],
        )
        self.assertEqual(self.statuses, [1])
        self.assertTrue(self.reactor.hasStopped)
        self.assertEqual([e for e in events if "retry" in formatEvent(e)], [])
        self.service.stopService()

    def test_stopWhileConnectingIsQuiet(self) -> None:
        """
        Stopping while a connection attempt is pending cancels it without
        logging it as a failure to connect.
        """
        self.makeService().startService()
        with capturedLogs() as events:
            self.service.stopService()
        self.assertTrue(self.reactor.connectors[0].stoppedConnecting)
        self.assertEqual([e for e in events if e["log_level"] >= LogLevel.warn], [])
