"""
Specification of L{uppercase.load.prober}: the load run as a service (the prober).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from uppercase.cli import client as twistdClient
from uppercase.load.prober import LoadService
from uppercase.testing import StreamTransport, asciiUpper


class ProberServiceTests(SynchronousTestCase):
    """
    C{twistd uppercase-client} with load options is the prober service.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        # Not stopped yet (Twisted 24.7's fake starts with hasStopped true,
        # which would make every check of it hold).
        self.reactor.hasStopped = False
        self.statuses: list[int] = []

    def service(self, *argv: str) -> Any:
        options = twistdClient.ClientOptions()
        options.parseOptions(["-c", "tcp:127.0.0.1:9527", *argv])
        service = twistdClient.makeService(
            options, reactor=self.reactor, exitStatus=self.statuses.append
        )
        self.assertIsInstance(service, LoadService)
        return service

    def connect(self) -> StreamTransport:
        host, port, factory, timeout, bind = self.reactor.tcpClients[-1]
        protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
        transport = StreamTransport()
        transport.connect(protocol)  # type: ignore[arg-type]
        return transport

    def test_proberRunsAndStops(self) -> None:
        """
        With --rate and --count 0 it sends on schedule until stopped; its
        stop logs the summary and closes the connection.
        """
        service = self.service("--rate", "10", "--count", "0", "--metrics", "tcp:0")
        service.startService()
        self.assertEqual(len(self.reactor.tcpServers), 1)
        transport = self.connect()
        answered = 0
        for _ in range(20):
            self.reactor.advance(0.1)
            data = transport.value()
            transport.receive(asciiUpper(data[answered:]))
            answered = len(data)
        with capturedLogs() as events:
            stopped = service.stopService()
        self.successResultOf(stopped)
        text = [formatEvent(e) for e in events]
        self.assertTrue(any(line.startswith("21 sent, 21 verified") for line in text), text)
        self.assertTrue(transport.disconnected)
        self.assertEqual(self.statuses, [])

    def test_reconnects(self) -> None:
        """
        A lost connection is tried again after a backoff.
        """
        service = self.service("--rate", "10", "--count", "0")
        service.startService()
        transport = self.connect()
        transport.reset()
        attempts = len(self.reactor.tcpClients)
        self.reactor.advance(10)
        self.assertGreater(len(self.reactor.tcpClients), attempts)
        service.stopService()

    def test_countReachedStopsReactor(self) -> None:
        """
        With a count, the run ends by itself and stops the reactor; a
        wrong reply makes the exit status 1.
        """
        self.reactor.running = True
        service = self.service("--count", "1", "--payload", "text")
        service.startService()
        transport = self.connect()
        transport.receive(transport.value())
        self.reactor.advance(0)
        self.assertTrue(self.reactor.hasStopped)
        self.assertEqual(self.statuses, [1])
