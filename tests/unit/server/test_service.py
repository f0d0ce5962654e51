"""The server service, on a memory reactor: listeners, limits, errors, stop."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from uppercase.proxy import ProxyHeaderFactory
from uppercase.server import UppercaseFactory
from uppercase.server._tls import TLSListening
from uppercase.service import ListenError, NamedListener, UppercaseService
from uppercase.testing import Refused, connectServer


class Port:
    """
    A listening port that records whether it was closed.
    """

    def __init__(self, address: Any) -> None:
        self.address = address
        self.stopped = False

    def getHost(self) -> Any:
        return self.address

    def startListening(self) -> None:
        pass

    def stopListening(self) -> None:
        self.stopped = True


class Reactor(MemoryReactorClock):
    """
    A memory reactor whose TCP ports say whether they were closed, and whose
    ports listed in C{taken} are in use.
    """

    def __init__(self, taken: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.taken = taken
        self.ports: list[Port] = []

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        if port in self.taken:
            raise CannotListenError(interface, port, OSError(98, "Address already in use"))
        super().listenTCP(port, factory, backlog, interface)
        self.ports.append(Port(IPv4Address("TCP", "0.0.0.0", port)))
        return self.ports[-1]


def service(
    reactor: Reactor, *descriptions: str, **kwargs: Any
) -> tuple[UppercaseService, UppercaseFactory]:
    factory = UppercaseFactory(reactor, logData=False)
    kwargs.setdefault("fdLimits", FakeLimits(100000, 100000).access())
    return UppercaseService(factory, list(descriptions), reactor, **kwargs), factory


class FakeLimits:
    """
    C{getrlimit}/C{setrlimit} for C{RLIMIT_NOFILE}, in memory.
    """

    def __init__(self, soft: int, hard: int) -> None:
        self.limits = (soft, hard)

    def access(self) -> tuple[Any, Any, int]:
        def setrlimit(limits: tuple[int, int]) -> None:
            self.limits = limits

        return (lambda: self.limits), setrlimit, -1


class ListenTests(SynchronousTestCase):
    """
    Every endpoint is listened on when the service starts, not before.
    """

    def test_nothingBeforeStart(self) -> None:
        """
        Building the service listens on nothing.
        """
        reactor = Reactor()
        service(reactor, "tcp:1", "tcp:2")
        self.assertEqual(reactor.tcpServers, [])

    def test_eachEndpointWithDefaultBacklog(self) -> None:
        """
        Each endpoint is listened on with the same factory, and a backlog of
        511 unless the endpoint string sets its own.
        """
        reactor = Reactor()
        svc, factory = service(reactor, "tcp:1", "tcp:2:backlog=7", "unix:/tmp/x.sock")
        svc.startService()
        self.assertEqual([(p, b) for p, _, b, _ in reactor.tcpServers], [(1, 511), (2, 7)])
        self.assertEqual(reactor.unixServers[0][2], 511)
        self.assertTrue(all(f is factory for _, f, _, _ in reactor.tcpServers))

    def test_haproxyListenerWrapsAndLimits(self) -> None:
        """
        A C{haproxy:} endpoint listens through L{ProxyHeaderFactory}, whose
        waiting connections count against the factory's limit of them.
        """
        reactor = Reactor()
        svc, factory = service(reactor, "haproxy:tcp:1")
        svc.startService()
        [(_, listening, backlog, _)] = reactor.tcpServers
        self.assertIsInstance(listening, ProxyHeaderFactory)
        self.assertEqual(backlog, 511)
        factory.admission.maxPending = 1
        connectServer(listening)
        self.assertRaises(Refused, connectServer, listening)

    def test_cannotListenIsListenError(self) -> None:
        """
        A port in use raises L{ListenError} naming the endpoint and the
        reason in a few words, and what was already listening is closed
        again.
        """
        reactor = Reactor(taken=(2,))
        svc, _ = service(reactor, "tcp:1", "tcp:2")
        error = self.assertRaises(ListenError, svc.privilegedStartService)
        self.assertEqual(str(error), "cannot listen on tcp:2: Address already in use")
        self.assertTrue(reactor.ports[0].stopped)

    def test_metricsPortInUseSaysMetrics(self) -> None:
        """
        A C{--metrics} port in use is named as the metrics port, so that the
        line says which option to change.
        """
        reactor = Reactor(taken=(2,))
        svc, _ = service(reactor, "tcp:1", metrics="tcp:2")
        error = self.assertRaises(ListenError, svc.privilegedStartService)
        self.assertEqual(str(error), "cannot listen for metrics on tcp:2: Address already in use")
        self.assertTrue(reactor.ports[0].stopped)

    def test_startAloneListens(self) -> None:
        """
        C{startService} alone (as C{twist} calls it) listens, and raises
        L{ListenError} the same way.
        """
        reactor = Reactor(taken=(3,))
        svc, _ = service(reactor, "tcp:3")
        self.assertRaises(ListenError, svc.startService)


class NamedListenerTests(SynchronousTestCase):
    """
    L{NamedListener}, one endpoint listened on as L{UppercaseService}
    listens (the supervisor's C{--metrics}).
    """

    def test_tlsListening(self) -> None:
        """
        An C{ssl:} endpoint listens with its factory through L{TLSListening}
        (with the protocols given for ALPN); a plain one on the reactor
        itself.
        """
        from twisted.application import strports
        from twisted.internet.protocol import Factory

        from uppercase.server import _service as serviceModule

        listened: list[tuple[Any, Any]] = []
        real = strports.service

        def record(endpoint: str, factory: Any, reactor: Any = None) -> Any:
            listened.append((factory, reactor))
            return real("tcp:0", factory, reactor=reactor)

        self.patch(serviceModule.strports, "service", record)
        factory = Factory()
        reactor = Reactor()
        NamedListener("ssl:2:privateKey=k.pem", factory, reactor, protocols=[b"http/1.1"])
        NamedListener("tcp:1", factory, reactor)
        [(tlsFactory, tlsReactor), (plainFactory, plainReactor)] = listened
        self.assertIs(tlsFactory, factory)
        self.assertIsInstance(tlsReactor, TLSListening)
        self.assertEqual(tlsReactor.protocols, (b"http/1.1",))
        self.assertIs(plainFactory, factory)
        self.assertIs(plainReactor, reactor)

    def test_cannotListenIsListenError(self) -> None:
        """
        A port in use raises L{ListenError} naming the endpoint, from
        C{privilegedStartService} (twistd) and from C{startService} alone
        (twist).
        """
        from twisted.internet.protocol import Factory

        for start in ("privilegedStartService", "startService"):
            listener = NamedListener("tcp:2", Factory(), Reactor(taken=(2,)))
            error = self.assertRaises(ListenError, getattr(listener, start))
            self.assertEqual(str(error), "cannot listen on tcp:2: Address already in use")

    def test_purposeNamed(self) -> None:
        """
        A listener given a purpose (the supervisor's C{--metrics}) names it
        in its L{ListenError}, from both ways of starting.
        """
        from twisted.internet.protocol import Factory

        for start in ("privilegedStartService", "startService"):
            listener = NamedListener("tcp:2", Factory(), Reactor(taken=(2,)), purpose="metrics")
            error = self.assertRaises(ListenError, getattr(listener, start))
            self.assertEqual(
                str(error), "cannot listen for metrics on tcp:2: Address already in use"
            )


class TLSListenerTests(SynchronousTestCase):
    """
    C{ssl:} listeners listen through L{TLSListening} (ALPN, and refusals
    closed at once); the others on the reactor itself.
    """

    def test_tlsListening(self) -> None:
        """
        An C{ssl:} listener (a PROXY listener on TLS too) gets the same
        factory as a plain one, and a L{TLSListening} around the reactor
        that selects no ALPN protocol; a TLS metrics endpoint's selects
        C{http/1.1}.
        """
        from twisted.application import strports

        from uppercase.server import _service as serviceModule

        listened: list[tuple[str, Any, Any]] = []
        real = strports.service

        def record(endpoint: str, factory: Any, reactor: Any = None) -> Any:
            listened.append((endpoint, factory, reactor))
            return real("tcp:0", factory, reactor=reactor)

        self.patch(serviceModule.strports, "service", record)
        reactor = Reactor()
        svc, factory = service(
            reactor,
            "tcp:1",
            "ssl:2:privateKey=k.pem",
            "haproxy:ssl:3:privateKey=k.pem",
            metrics="ssl:4:privateKey=k.pem",
        )
        [plain, tls, proxied, metrics] = listened
        self.assertIs(plain[1], factory)
        self.assertIs(plain[2], reactor)
        self.assertIs(tls[1], factory)
        self.assertIsInstance(proxied[1], ProxyHeaderFactory)
        for _, _, listening in (tls, proxied):
            self.assertIsInstance(listening, TLSListening)
            self.assertEqual(listening.protocols, ())
        self.assertIsInstance(metrics[2], TLSListening)
        self.assertEqual(metrics[2].protocols, (b"http/1.1",))


class StopTests(SynchronousTestCase):
    """
    Stopping closes the listeners at once and drains the connections.
    """

    def test_stopClosesListenersAndRefuses(self) -> None:
        """
        After C{stopService}, every port is closed, new connections are
        refused, and the returned Deferred fires once the open ones end.
        """
        reactor = Reactor()
        svc, factory = service(reactor, "tcp:1", "tcp:2")
        svc.startService()
        _, transport = connectServer(factory, peerReads=False)
        transport.receive(b"owed")
        d = svc.stopService()
        self.assertTrue(all(port.stopped for port in reactor.ports))
        self.assertRaises(Refused, connectServer, factory)
        self.assertNoResult(d)
        transport.read()
        transport.receiveEOF()
        self.successResultOf(d)


class DescriptorLimitTests(SynchronousTestCase):
    """
    The connection limit is fitted to the descriptor limit, with room for
    the metrics site's connections, at start.
    """

    def test_loweredToFit(self) -> None:
        """
        With a hard limit of 1,000 descriptors, C{--max-connections 10000}
        becomes what fits, and that is logged once.
        """
        reactor = Reactor()
        limits = FakeLimits(1000, 1000)
        svc, factory = service(reactor, "tcp:1", fdLimits=limits.access())
        with capturedLogs() as events:
            svc.privilegedStartService()
        self.assertEqual(factory.admission.maxConnections, 1000 - 32)
        self.assertEqual(events[0]["capacity"], 1000 - 32)

    def test_metricsConnectionsReserved(self) -> None:
        """
        With C{--metrics}, the metrics site's connections are kept out of
        the echo's share, so neither can starve the other.
        """
        reactor = Reactor()
        limits = FakeLimits(1000, 1000)
        svc, factory = service(reactor, "tcp:1", fdLimits=limits.access(), metrics="tcp:2")
        svc.privilegedStartService()
        self.assertLess(factory.admission.maxConnections, 1000 - 32)
        self.assertEqual(factory.admission.maxConnections + svc.metricsConnections + 32, 1000)

    def test_waitingConnectionsShareOut(self) -> None:
        """
        With a PROXY listener and a small descriptor limit, connections
        waiting for a header get at most a quarter of what is left after
        the metrics site, and open connections the rest.
        """
        reactor = Reactor()
        limits = FakeLimits(128, 128)
        svc, factory = service(
            reactor, "tcp:1", "haproxy:tcp:2", fdLimits=limits.access(), metrics="tcp:3"
        )
        svc.privilegedStartService()
        left = 128 - 32 - svc.metricsConnections
        self.assertEqual(factory.admission.maxPending, left // 4)
        self.assertEqual(factory.admission.maxConnections, left - left // 4)

    def test_softRaised(self) -> None:
        """
        A soft limit too low for the connection limit is raised towards the
        hard one, and the connection limit kept.
        """
        reactor = Reactor()
        limits = FakeLimits(1024, 65536)
        svc, factory = service(reactor, "tcp:1", fdLimits=limits.access())
        svc.privilegedStartService()
        self.assertEqual(factory.admission.maxConnections, 10000)
        self.assertGreaterEqual(limits.limits[0], 10000 + 32)


class StartLogTests(SynchronousTestCase):
    """
    The start-up line says where the server listens and which echo it
    serves.
    """

    def test_saysWhichEcho(self) -> None:
        """
        The line names the uppercase echo, or the plain one (RFC 862).
        """
        for plain, echo in ((False, "uppercase echo"), (True, "plain echo, RFC 862")):
            reactor = Reactor()
            factory = UppercaseFactory(reactor, logData=False, plain=plain)
            svc = UppercaseService(
                factory, ["tcp:1"], reactor, fdLimits=FakeLimits(100000, 100000).access()
            )
            with capturedLogs() as events:
                svc.startService()
            [line] = [e for e in events if "serving on" in e["log_format"]]
            self.assertEqual(line["echo"], echo)
            self.assertIn(f"serving on tcp:1 ({echo})", formatEvent(line))
