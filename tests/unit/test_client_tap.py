"""The client's command-line layer: its options and the twistd service they build."""

from __future__ import annotations

from twisted.application.internet import ClientService
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, capturedLogs
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from uppercase import _client_tap

from .test_tap import assertUsageErrorsName


class ClientOptionsTests(SynchronousTestCase):
    """
    Options shared by C{uppercase-client} and C{twistd uppercase-client}.
    """

    def parse(self, *argv: str) -> usage.Options:
        options = _client_tap.ClientOptions()
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

    def test_values(self) -> None:
        """
        Values are converted: the message to UTF-8 bytes, numbers to numbers.
        """
        options = self.parse("-m", "héllo", "-n", "0", "-i", "0.25", "-t", "3")
        self.assertEqual(options["message"], "héllo".encode())
        self.assertEqual(
            (options["count"], options["interval"], options["timeout"]), (0, 0.25, 3.0)
        )

    def test_badValues(self) -> None:
        """
        Bad values are usage errors naming the option; a zero timeout too.
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
            ],
        )


class ClientServiceTests(SynchronousTestCase):
    """
    C{twistd uppercase-client} retries with backoff, logging each failure,
    and stops the reactor when done.
    """

    def setUp(self) -> None:
        options = _client_tap.ClientOptions()
        options.parseOptions(["-c", "tcp:127.0.0.1:9527", "-n", "1"])
        self.reactor = MemoryReactorClock()
        self.reactor.running = True
        self.service = _client_tap.makeService(options, reactor=self.reactor)

    def test_shape(self) -> None:
        """
        The service wraps a L{ClientService}; nothing connects before start.
        """
        self.assertIsInstance(self.service.clientService, ClientService)
        self.assertEqual(self.reactor.tcpClients, [])

    def test_failureLoggedAndRetried(self) -> None:
        """
        A refused connection is logged with its reason, and another attempt
        follows after a backoff delay.
        """
        self.service.startService()
        host, port, factory, timeout, bind = self.reactor.tcpClients[0]
        self.assertEqual((host, port), ("127.0.0.1", 9527))
        with capturedLogs() as events:
            factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        [failed] = [e for e in events if e.get("log_level") == LogLevel.warn]
        self.assertIn("refused", failed["reason"])
        self.reactor.advance(10)
        self.assertEqual(len(self.reactor.tcpClients), 2)
        self.service.stopService()

    def test_stopsReactorWhenDone(self) -> None:
        """
        Once every reply is verified the reactor is stopped.
        """
        self.service.startService()
        self.service.factory.finished.callback(None)
        self.assertTrue(self.reactor.hasStopped)
        self.service.stopService()
