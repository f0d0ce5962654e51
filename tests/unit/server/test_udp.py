"""
Specification of L{uppercase.server._udp}: C{udp:} endpoint strings, the
per-source log, the UDP listener, and the service serving UDP (in memory).
"""

from __future__ import annotations

import os
import socket
from typing import Any

from twisted.internet.error import CannotListenError
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from uppercase._settings import SettingError
from uppercase.echo import DatagramEcho
from uppercase.net.transport import datagramSender
from uppercase.server import UppercaseFactory
from uppercase.server._settings import checkServerEndpoint
from uppercase.server._udp import (
    DatagramListener,
    DatagramServer,
    SourceLog,
    UDPAddress,
    datagramSocket,
    parseUDP,
)
from uppercase.service import ListenError, UppercaseService

A = ("127.0.0.1", 4000)
B = ("::1", 4001)


class ParseTests(SynchronousTestCase):
    """
    L{parseUDP} reads C{udp:PORT[:interface=ADDR]} as C{tcp:} strings are
    written, and says in a few words what is wrong with a bad one.
    """

    def test_forms(self) -> None:
        """
        A port alone, or by keyword, with an IPv4 or IPv6 interface (colons
        escaped, or in brackets).
        """
        self.assertEqual(parseUDP("udp:9527"), UDPAddress(9527, ""))
        self.assertEqual(parseUDP("UDP:port=0"), UDPAddress(0, ""))
        self.assertEqual(parseUDP("udp:9527:interface=127.0.0.1"), UDPAddress(9527, "127.0.0.1"))
        self.assertEqual(parseUDP(r"udp:9527:interface=\:\:1"), UDPAddress(9527, "::1"))
        self.assertEqual(parseUDP("udp:9527:interface=[::1]").family, socket.AF_INET6)

    def test_bad(self) -> None:
        """
        A missing or non-numeric port, a port out of range, an interface
        that is no address, an unknown keyword, a second port: each a
        C{ValueError} naming the problem.
        """
        for description, words in [
            ("udp:", "port must be a number"),
            ("udp", "one port"),
            ("udp:x", "not 'x'"),
            ("udp:65536", "0 to 65535"),
            ("udp:\u0661\u0662", "port must be"),
            ("udp:1:interface=example.com", "IPv4 or IPv6 address"),
            ("udp:1:interface=::1", "one port"),
            ("udp:1:backlog=5", "not backlog"),
            ("udp:1:2", "one port"),
        ]:
            error = self.assertRaises(ValueError, parseUDP, description)
            self.assertIn(words, str(error), description)

    def test_checkedAsOption(self) -> None:
        """
        C{--listen} with a bad C{udp:} string, or C{haproxy:udp:...}, or
        C{--metrics udp:...}, is one L{SettingError} line naming the option
        and the string.
        """
        error = self.assertRaises(SettingError, checkServerEndpoint, "udp:x")
        self.assertEqual(
            str(error),
            "--listen 'udp:x' is not a valid endpoint: the port must be a number "
            "from 0 to 65535, not 'x'",
        )
        error = self.assertRaises(SettingError, checkServerEndpoint, "haproxy:udp:1")
        self.assertIn("PROXY headers", str(error))
        error = self.assertRaises(SettingError, checkServerEndpoint, "udp:1", "--metrics")
        self.assertIn("--metrics 'udp:1'", str(error))
        checkServerEndpoint(r"udp:1:interface=\:\:1")


class SourceLogTests(SynchronousTestCase):
    """
    The UDP log: one line per source per second with counts, bounded.
    """

    def test_linePerSourcePerSecond(self) -> None:
        """
        After a second with traffic, each source that sent gets one line
        with its datagrams, bytes, echoes and drops by reason, in words;
        a second without traffic logs nothing.
        """
        clock = Clock()
        sources = SourceLog(clock)
        with capturedLogs() as events:
            for _ in range(3):
                sources(A, 10, None)
            sources(A, 70000, "too-large")
            sources(B, 1, "source-rate")
            clock.advance(1)
            clock.advance(5)
        lines = sorted(e["log_format"].format(**e) for e in events)
        self.assertEqual(
            lines,
            [
                "UDP 127.0.0.1:4000: 4 datagrams (70,030 bytes) in the last second, 3 echoed, "
                "1 dropped (1 too large)",
                "UDP [::1]:4001: 1 datagram (1 byte) in the last second, 0 echoed, "
                "1 dropped (1 over the per-source rate)",
            ],
        )
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_bounded(self) -> None:
        """
        However many sources send in a second, at most C{limit} get a line;
        the others are summed in one line.
        """
        clock = Clock()
        sources = SourceLog(clock, limit=2)
        with capturedLogs() as events:
            for port in range(1000):
                sources(("10.0.0.1", port), 1, None)
            clock.advance(1)
        self.assertEqual(len(events), 3)
        self.assertEqual(
            events[-1]["log_format"].format(**events[-1]),
            "UDP other sources: 998 datagrams (998 bytes) in the last second, 998 echoed",
        )

    def test_quiet(self) -> None:
        """
        Quiet, no per-source lines: one line a second only when something
        was dropped, with the drops by reason.
        """
        clock = Clock()
        sources = SourceLog(clock, quiet=True)
        with capturedLogs() as events:
            sources(A, 1, None)
            clock.advance(1)
            sources(A, 1, None)
            sources(B, 1, "global-rate")
            sources(A, 1, "global-rate")
            clock.advance(1)
        self.assertEqual(
            [e["log_format"].format(**e) for e in events],
            ["UDP: dropped 2 datagrams in the last second (2 over the global rate)"],
        )


class QuietServerTests(SynchronousTestCase):
    """
    A quiet server's echo tells its log only of drops: the log's lines
    and the counts are what they were, and no timer runs for a second
    with nothing to say.
    """

    def test_quietEchoTellsLogOfDropsOnly(self) -> None:
        """
        Quiet, datagrams echoed start no timer and log nothing; a second
        with a drop logs its one line, the counts agreeing with it.
        """
        clock = Clock()
        server = DatagramServer(clock, logData=False)
        protocol = server.buildProtocol()
        protocol.makeConnection(FakePort())  # type: ignore[arg-type]
        with capturedLogs() as events:
            for _ in range(3):
                protocol.datagramReceived(b"x", A)
            self.assertEqual(clock.getDelayedCalls(), [])
            protocol.datagramReceived(b"a" * 65508, A)
            protocol.datagramReceived(b"y", A)
            clock.advance(1)
        self.assertEqual(
            [e["log_format"].format(**e) for e in events],
            ["UDP: dropped 1 datagram in the last second (1 too large)"],
        )
        self.assertEqual(server.counts.sent, 4)
        self.assertEqual(server.counts.dropped["too-large"], 1)

    def test_loudEchoTellsLogOfEveryDatagram(self) -> None:
        """
        Not quiet, every datagram, echoed or dropped, is in its source's
        line.
        """
        clock = Clock()
        server = DatagramServer(clock)
        protocol = server.buildProtocol()
        protocol.makeConnection(FakePort())  # type: ignore[arg-type]
        with capturedLogs() as events:
            protocol.datagramReceived(b"x", A)
            protocol.datagramReceived(b"a" * 65508, A)
            clock.advance(1)
        [line] = [e["log_format"].format(**e) for e in events]
        self.assertEqual(
            line,
            "UDP 127.0.0.1:4000: 2 datagrams (65,509 bytes) in the last second, 1 echoed, "
            "1 dropped (1 too large)",
        )


class FakePort:
    """A datagram transport that takes every datagram."""

    def write(self, datagram: bytes, addr: Any = None) -> None:
        pass


class UDPReactor(MemoryReactorClock):
    """
    A memory reactor that records UDP ports, and whose UDP ports in
    C{taken} are in use.
    """

    def __init__(self, taken: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.taken = taken
        self.udp: list[tuple[int, Any, str, int]] = []
        self.stopped: list[int] = []

    def listenUDP(
        self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192
    ) -> Any:
        if port in self.taken:
            raise CannotListenError(interface, port, OSError(98, "Address already in use"))
        self.udp.append((port, protocol, interface, maxPacketSize))
        reactor = self

        class Port:
            def stopListening(self) -> None:
                reactor.stopped.append(port)

        return Port()


class ListenerTests(SynchronousTestCase):
    """
    The service listens on C{udp:} endpoints with the datagram echo.
    """

    def test_listensWithWholeDatagrams(self) -> None:
        """
        A C{udp:} endpoint listens on its port and interface when the
        service starts, reading up to 65,536 bytes a datagram (so one too
        large is seen whole), with the server's datagram echo, plain if the
        server is; stopping closes the port.
        """
        reactor = UDPReactor()
        datagrams = DatagramServer(reactor, plain=True)
        factory = UppercaseFactory(reactor, logData=False)
        svc = UppercaseService(factory, ["udp:9:interface=127.0.0.1"], reactor, datagrams=datagrams)
        self.assertEqual(reactor.udp, [])
        svc.startService()
        [(port, protocol, interface, size)] = reactor.udp
        self.assertEqual((port, interface, size), (9, "127.0.0.1", 65536))
        self.assertIsInstance(protocol, DatagramEcho)
        self.assertIs(protocol.counts, datagrams.counts)
        self.assertEqual(protocol.transform(b"ab"), b"ab")
        svc.stopService()
        self.assertEqual(reactor.stopped, [9])

    def test_defaultLimits(self) -> None:
        """
        Without a datagram server given, the service's has the default
        limits.
        """
        reactor = UDPReactor()
        svc = UppercaseService(UppercaseFactory(reactor), ["udp:9"], reactor)
        self.assertEqual(svc.datagrams.admission.perSource, 1000)

    def test_defaultFollowsPlainFactory(self) -> None:
        """
        Without a datagram server given, the service's echoes as its
        factory does: unchanged for a plain factory, uppercased otherwise.
        """
        reactor = UDPReactor()
        plain = UppercaseService(UppercaseFactory(reactor, plain=True), ["udp:9"], reactor)
        upper = UppercaseService(UppercaseFactory(reactor), ["udp:9"], reactor)
        self.assertEqual(
            (plain.datagrams.plain, upper.datagrams.plain),
            (True, False),
        )

    def test_portInUse(self) -> None:
        """
        A UDP port in use is a L{ListenError} naming it, in one line.
        """
        reactor = UDPReactor(taken=(9,))
        svc = UppercaseService(UppercaseFactory(reactor), ["udp:9"], reactor)
        error = self.assertRaises(ListenError, svc.privilegedStartService)
        self.assertEqual(str(error), "cannot listen on udp:9: Address already in use")

    def test_adoptsDatagramSocket(self) -> None:
        """
        An inherited datagram socket (a worker's) is adopted as a UDP port
        with the datagram echo, its family the socket's, non-blocking.
        """
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        self.assertTrue(datagramSocket(sock.fileno()))
        reactor = UDPReactor()
        svc = UppercaseService(
            UppercaseFactory(reactor), ["udp:9"], reactor, inherited=[sock.fileno()]
        )
        svc.startService()
        [(fd, family, protocol, size)] = reactor.adoptedPorts
        self.assertEqual((fd, family, size), (sock.fileno(), socket.AF_INET6, 65536))
        self.assertIsInstance(protocol, DatagramEcho)
        self.assertFalse(os.get_blocking(sock.fileno()))

    def test_streamSocketNotDatagram(self) -> None:
        """
        A stream socket is not taken for a datagram one.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(sock.close)
        self.assertFalse(datagramSocket(sock.fileno()))

    def test_probeKeepsBlockingMode(self) -> None:
        """
        Asking leaves the descriptor's blocking mode as it was, either way:
        a worker's listening socket made blocking (as PyPy's
        C{socket(fileno=)} does) would block its reactor in C{accept()}.
        """
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            for blocking in (False, True):
                sock = socket.socket(socket.AF_INET, kind)
                self.addCleanup(sock.close)
                os.set_blocking(sock.fileno(), blocking)
                datagramSocket(sock.fileno())
                self.assertEqual(os.get_blocking(sock.fileno()), blocking, (kind, blocking))

    def test_listenerNeedsOneSource(self) -> None:
        """
        A listener takes an address or a descriptor.
        """
        server = DatagramServer(Clock())
        self.assertRaises(ValueError, DatagramListener, server, None)


class FailingSocket:
    """
    A UDP port's socket whose C{sendto} raises C{error} (and counts its
    calls); everything else is the real socket's.
    """

    def __init__(self, real: socket.socket, error: OSError) -> None:
        self.real = real
        self.error = error
        self.calls = 0

    def sendto(self, data: bytes, addr: Any) -> int:
        self.calls += 1
        raise self.error

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class SendPathTests(SynchronousTestCase):
    """
    The server's echo sends with the port socket's C{sendto}
    (L{uppercase.net.transport.datagramSender}), not Twisted's
    C{Port.write}, and counts what the kernel says exactly as
    C{Port.write} had it counted.
    """

    def echoOn(self, direct: bool) -> tuple[DatagramServer, DatagramEcho, Any]:
        """
        The server's echo on Twisted's own UDP port (a memory reactor),
        sending directly, or through C{Port.write} as before.
        """
        from twisted.internet import udp

        server = DatagramServer(Clock())
        protocol = server.buildProtocol()
        if not direct:
            protocol._chooseSend = None
        port = udp.Port(0, protocol, "127.0.0.1", 65536, MemoryReactorClock())
        port.startListening()
        self.addCleanup(port.connectionLost)
        return server, protocol, port

    def test_sendsWithSocket(self) -> None:
        """
        The echo's send is the port socket's C{sendto}, and the reply
        reaches the sender.
        """
        server, protocol, port = self.echoOn(direct=True)
        self.assertEqual(protocol.send, port.socket.sendto)
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(peer.close)
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(5)
        with capturedLogs():
            protocol.datagramReceived(b"hello", peer.getsockname())
        self.assertEqual(peer.recv(100), b"HELLO")
        self.assertEqual((server.counts.sent, server.counts.sentBytes), (1, 5))

    def test_errorsCountedAsBefore(self) -> None:
        """
        For each error C{sendto} can raise, the datagram is counted as
        C{Port.write} had it counted: C{ECONNREFUSED} as sent (C{Port.write}
        ignores it on a port not connected), C{EAGAIN}, C{ENOBUFS},
        C{EMSGSIZE} and any other as dropped, C{send-failed}; never raised.
        """
        import errno

        errors = [
            BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable"),
            OSError(errno.ENOBUFS, "No buffer space available"),
            OSError(errno.EMSGSIZE, "Message too long"),
            ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
            PermissionError(errno.EPERM, "Operation not permitted"),
        ]
        results = {}
        for direct in (True, False):
            counted = []
            for error in errors:
                server, protocol, port = self.echoOn(direct)
                failing = port.socket = FailingSocket(port.socket, error)
                if direct:  # chosen again, as when the port started
                    protocol.send = datagramSender(port)
                    self.assertEqual(protocol.send, failing.sendto)
                with capturedLogs():
                    protocol.datagramReceived(b"x", A)
                port.socket = failing.real
                self.assertEqual(failing.calls, 1)
                counts = server.counts
                counted.append((counts.sent, counts.dropped["send-failed"]))
            results[direct] = counted
        self.assertEqual(results[True], results[False])
        self.assertEqual(results[True], [(0, 1), (0, 1), (0, 1), (1, 0), (0, 1)])
