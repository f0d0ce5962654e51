"""The PROXY protocol header parser and wrapper, in memory."""

from __future__ import annotations

import socket
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress, IHalfCloseableProtocol
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from uppercase.echo import UppercaseProtocol
from uppercase.proxy import Addresses, InvalidHeader, ProxyHeaderFactory, parseHeader
from uppercase.server import UppercaseFactory
from uppercase.testing import Refused, connectServer

V1 = b"PROXY TCP4 203.0.113.9 198.51.100.1 41234 9527\r\n"


def v2(command: int = 0x1, family: int = 0x11, body: bytes | None = None) -> bytes:
    if body is None:
        body = (
            socket.inet_aton("203.0.113.9")
            + socket.inet_aton("198.51.100.1")
            + struct.pack("!HH", 41234, 9527)
        )
    return (
        b"\r\n\r\n\x00\r\nQUIT\n"
        + bytes([0x20 | command, family])
        + struct.pack("!H", len(body))
        + body
    )


CLIENT = IPv4Address("TCP", "203.0.113.9", 41234)


def complete(data: bytes) -> tuple[Addresses, int]:
    """
    L{parseHeader} of a complete header.
    """
    parsed = parseHeader(data)
    assert parsed is not None, "incomplete"
    return parsed


def client(addresses: Addresses) -> IAddress:
    """
    The client's address from parsed addresses.
    """
    assert addresses is not None, "no addresses"
    return addresses[0]


class ParseTests(SynchronousTestCase):
    """
    Headers of both versions are parsed into the client's address.
    """

    def test_v1(self) -> None:
        """
        A v1 TCP4 header gives source and destination; its length is where
        the payload starts.
        """
        addresses, length = complete(V1 + b"payload")
        self.assertEqual(addresses, (CLIENT, IPv4Address("TCP", "198.51.100.1", 9527)))
        self.assertEqual(length, len(V1))

    def test_v1IPv6(self) -> None:
        """
        A v1 TCP6 header gives IPv6 addresses, normalised.
        """
        header = b"PROXY TCP6 2001:db8:0::1 2001:db8::2 5 6\r\n"
        addresses, _ = complete(header)
        self.assertEqual(client(addresses), IPv6Address("TCP", "2001:db8::1", 5))

    def test_v1Unknown(self) -> None:
        """
        C{PROXY UNKNOWN} keeps the connection's own addresses.
        """
        self.assertEqual(parseHeader(b"PROXY UNKNOWN\r\n"), (None, 15))

    def test_v2(self) -> None:
        """
        A v2 PROXY/TCP4 header gives the same addresses as v1.
        """
        header = v2()
        addresses, length = complete(header + b"payload")
        self.assertEqual(client(addresses), CLIENT)
        self.assertEqual(length, len(header))

    def test_v2IPv6AndTLVs(self) -> None:
        """
        A v2 TCP6 header with trailing TLVs is parsed and fully skipped.
        """
        body = (
            socket.inet_pton(socket.AF_INET6, "2001:db8::7")
            + socket.inet_pton(socket.AF_INET6, "2001:db8::8")
            + struct.pack("!HH", 7, 8)
            + b"\x04\x00\x02ab"
        )
        header = v2(family=0x21, body=body)
        addresses, length = complete(header)
        self.assertEqual(client(addresses), IPv6Address("TCP", "2001:db8::7", 7))
        self.assertEqual(length, len(header))

    def test_v2Local(self) -> None:
        """
        A v2 LOCAL header (the proxy's own health check) keeps the
        connection's own addresses.
        """
        header = v2(command=0x0, family=0x00, body=b"")
        self.assertEqual(parseHeader(header), (None, len(header)))

    def test_incomplete(self) -> None:
        """
        Every proper prefix of a header asks for more bytes.
        """
        for header in (V1, v2()):
            for end in range(1, len(header)):
                self.assertIsNone(parseHeader(header[:end]), header[:end])

    def test_invalid(self) -> None:
        """
        Anything else is rejected: plain data, a malformed v1 line (a port
        out of range, or not in plain digits: C{+1}, C{1_0}, a non-ASCII
        digit), a v1 line without its end within 107 bytes, a bad v2
        version.
        """
        for data in [
            b"hello\n",
            b"PROXY TCP4 1.2.3 4.5.6.7 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 4.5.6.7 1 99999\r\n",
            b"PROXY TCP4 1.2.3.4 4.5.6.7 +1 2\r\n",
            b"PROXY TCP4 1.2.3.4 4.5.6.7 1 1_0\r\n",
            b"PROXY TCP4 1.2.3.4 4.5.6.7 1 \xd9\xa1\r\n",
            b"PROXY " + b"x" * 120,
            b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x00",
        ]:
            self.assertRaises(InvalidHeader, parseHeader, data)


PROXY = IPv4Address("TCP", "127.0.0.1", 50000)
"""The load balancer's own address, as the listening socket sees it."""


def source(n: int) -> IPv4Address:
    """
    The C{n}th of several addresses that reach a PROXY listener.
    """
    return IPv4Address("TCP", f"198.51.100.{n + 10}", 1)


class WrapperTests(SynchronousTestCase):
    """
    The wrapper connects the wrapped protocol only once the header is read,
    with the client's address, and passes half-close through.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.inner = UppercaseFactory(self.clock, logData=False, idleTimeout=0)
        self.factory = ProxyHeaderFactory(
            self.inner, self.clock, headerTimeout=5, limit=self.inner.admission
        )
        self.wrapper, self.transport = connectServer(self.factory, PROXY)

    def test_clientAddressSeenByProtocol(self) -> None:
        """
        The echo protocol is built and connected after the header, with the
        client's address, and gets the payload that followed the header.
        """
        self.assertEqual(self.inner.connections, set())
        self.transport.receive(V1[:10])
        self.transport.receive(V1[10:] + b"hi")
        [protocol] = self.inner.connections
        self.assertEqual(protocol.transport.getPeer(), CLIENT)
        self.assertEqual(protocol.peer, "203.0.113.9:41234")
        self.assertEqual(self.transport.value(), b"HI")

    def test_anyFactory(self) -> None:
        """
        Any factory can be wrapped: C{Factory.forProtocol} of the echo.
        """
        factory = ProxyHeaderFactory(Factory.forProtocol(UppercaseProtocol), self.clock)
        _, transport = connectServer(factory, PROXY)
        transport.receive(v2() + b"abc")
        self.assertEqual(transport.value(), b"ABC")

    @settings(max_examples=100, deadline=None)
    @given(st.data())
    def test_anySplit(self, data: st.DataObject) -> None:
        """
        However the header and payload are split, the payload comes back
        whole and uppercased.
        """
        stream = v2() + b"payload"
        cuts = sorted(data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=6)))
        _, transport = connectServer(self.factory, PROXY)
        for start, end in zip([0] + cuts, cuts + [len(stream)]):
            if start < end:
                transport.receive(stream[start:end])
        self.assertEqual(transport.value(), b"PAYLOAD")

    def test_halfClosePassedThrough(self) -> None:
        """
        The wrapper is half-closeable, and the peer's EOF reaches the echo
        protocol, which closes after its replies.
        """
        self.assertTrue(IHalfCloseableProtocol.providedBy(self.wrapper))
        wrapper, transport = connectServer(self.factory, PROXY, peerReads=False)
        transport.receive(V1 + b"bye")
        transport.receiveEOF()
        self.assertFalse(transport.disconnected)
        self.assertEqual(transport.read(), b"BYE")
        self.assertTrue(transport.disconnected)
        self.assertFalse(transport.aborted)

    def test_invalidHeaderAborts(self) -> None:
        """
        A connection that does not start with a header is aborted, and
        logged with the proxy's address as people write it.
        """
        with capturedLogs() as events:
            self.transport.receive(b"GET / HTTP/1.1\r\n")
        self.assertTrue(self.transport.aborted)
        self.assertEqual(self.inner.connections, set())
        self.assertEqual(events[0]["peer"], "127.0.0.1:50000")

    def test_incompleteHeaderThenHalfCloseLogged(self) -> None:
        """
        A connection that sends part of a header (here a v1 line ending in a
        bare LF) and then ends its side is closed with a line saying so; one
        that sends nothing and ends is closed silently (a probe).
        """
        with capturedLogs() as events:
            self.transport.receive(V1.replace(b"\r\n", b"\n"))
            self.transport.receiveEOF()
        self.assertTrue(self.transport.disconnected)
        [line] = [e["log_format"].format(**e) for e in events]
        self.assertEqual(
            line,
            "Closing connection from 127.0.0.1:50000: it ended its side before its PROXY "
            "header was complete",
        )
        _, silent = connectServer(self.factory, PROXY)
        with capturedLogs() as events:
            silent.receiveEOF()
        self.assertTrue(silent.disconnected)
        self.assertEqual(events, [])

    def test_headerTimeout(self) -> None:
        """
        A connection that sends no header within the timeout is aborted;
        nothing stays scheduled.
        """
        with capturedLogs() as events:
            self.clock.advance(5)
        self.assertTrue(self.transport.aborted)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(
            events[0]["log_format"].format(**events[0]),
            "Closing connection from 127.0.0.1:50000: no PROXY header within 5s",
        )


class LimitTests(SynchronousTestCase):
    """
    Connections still waiting for their header have a limit of their own,
    apart from open connections, so that silent connections to a PROXY
    listener cannot starve plain listeners; the per-address limit applies
    to the client's address from the header.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.inner = UppercaseFactory(
            self.clock, logData=False, idleTimeout=0, maxConnections=3, maxPerIP=1, maxPending=3
        )
        self.factory = ProxyHeaderFactory(self.inner, self.clock, limit=self.inner.admission)

    def test_waitingConnectionsLimited(self) -> None:
        """
        With a limit of 3 waiting connections, three silent connections fill
        it: a fourth is refused at once, and a slot comes back when one of
        them ends.
        """
        transports = [connectServer(self.factory, source(n))[1] for n in range(3)]
        with capturedLogs() as events:
            self.assertRaises(Refused, connectServer, self.factory, source(3))
        self.assertIn("3 connections already waiting for their PROXY header", events[0]["reason"])
        transports[0].reset()
        connectServer(self.factory, source(3))

    def test_timedOutHeaderFreesItsSlot(self) -> None:
        """
        A connection aborted for not sending its header gives its slot back.
        """
        for n in range(3):
            connectServer(self.factory, source(n))
        self.clock.advance(10)
        connectServer(self.factory, source(3))

    def test_waitingDoNotStarvePlain(self) -> None:
        """
        However many connections wait for a header, a plain listener's
        clients are served up to C{maxConnections}; a connection whose
        header arrived then counts as open.
        """
        for n in range(3):
            connectServer(self.factory, source(n))
        for port in range(3):
            connectServer(self.inner, IPv4Address("TCP", f"192.0.2.{port + 1}", 1))
        self.assertEqual(self.inner.admission.pending, 3)
        self.assertEqual(len(self.inner.connections), 3)

    def test_perIPOnTheClientsAddress(self) -> None:
        """
        Two clients behind the same proxy are two hosts; the same client
        twice is refused by C{maxPerIP=1} (closed once it sends after its
        header: a header alone may be a health check).
        """
        _, first = connectServer(self.factory, PROXY)
        first.receive(V1 + b"a")
        _, other = connectServer(self.factory, PROXY)
        other.receive(V1.replace(b"203.0.113.9", b"203.0.113.10") + b"b")
        _, again = connectServer(self.factory, PROXY)
        again.receive(V1 + b"c")
        self.assertFalse(first.disconnecting)
        self.assertFalse(other.disconnecting)
        self.assertTrue(again.disconnected)
        self.assertEqual(len(self.inner.connections), 2)

    def test_oneAddressCannotFillWaitingSlots(self) -> None:
        """
        Once half the waiting slots are taken, one address may hold at most
        C{maxPerIP} of them: silent connections from one address cannot lock
        the proxy out; a slot it gives back is its own again.
        """
        inner = UppercaseFactory(
            self.clock, logData=False, idleTimeout=0, maxPerIP=2, maxPending=20
        )
        factory = ProxyHeaderFactory(inner, self.clock, limit=inner.admission)
        attacker = IPv4Address("TCP", "192.0.2.66", 1)
        held = [connectServer(factory, attacker)[1] for _ in range(10)]
        with capturedLogs() as events:
            self.assertRaises(Refused, connectServer, factory, attacker)
        self.assertEqual(
            events[0]["reason"],
            "10 connections from 192.0.2.66 already waiting for their PROXY header",
        )
        _, proxy = connectServer(factory, PROXY)
        proxy.receive(V1 + b"hi")
        self.assertEqual(proxy.value(), b"HI")
        held[0].reset()
        connectServer(factory, attacker)
        self.assertRaises(Refused, connectServer, factory, attacker)
        self.assertEqual(inner.admission.pending, 10)

    def test_proxyBurstBelowHalf(self) -> None:
        """
        Below half the waiting slots, the proxy may open more connections at
        once than C{maxPerIP} (its headers are on their way).
        """
        inner = UppercaseFactory(
            self.clock, logData=False, idleTimeout=0, maxPerIP=2, maxPending=20
        )
        factory = ProxyHeaderFactory(inner, self.clock, limit=inner.admission)
        for _ in range(10):
            connectServer(factory, PROXY)
        self.assertEqual(inner.admission.pending, 10)

    def test_unlimitedWaitingStillPerAddress(self) -> None:
        """
        With no limit on waiting connections (0), one address may hold at
        most C{maxPerIP} waiting connections.
        """
        inner = UppercaseFactory(self.clock, logData=False, idleTimeout=0, maxPerIP=2, maxPending=0)
        factory = ProxyHeaderFactory(inner, self.clock, limit=inner.admission)
        connectServer(factory, PROXY)
        connectServer(factory, PROXY)
        self.assertRaises(Refused, connectServer, factory, PROXY)
        connectServer(factory, IPv4Address("TCP", "192.0.2.1", 1))


class HealthCheckTests(SynchronousTestCase):
    """
    A header without a client address (v2 LOCAL, v1 UNKNOWN), as a proxy's
    health check sends it, reaches the wrapped factory only if data follows.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.inner = UppercaseFactory(self.clock, logData=False, idleTimeout=0)
        self.factory = ProxyHeaderFactory(self.inner, self.clock, limit=self.inner.admission)

    def test_checkThenResetIsNotLogged(self) -> None:
        """
        HAProxy's C{check} with C{send-proxy-v2}: a LOCAL header, then a
        reset.  Nothing is logged and the wrapped factory never sees it.
        """
        for header in (v2(command=0x0, family=0x00, body=b""), b"PROXY UNKNOWN\r\n"):
            with capturedLogs() as events:
                _, transport = connectServer(self.factory, PROXY)
                transport.receive(header)
                transport.reset()
            self.assertEqual(list(events), [])
            self.assertEqual(self.inner.accepted, 0)
        self.assertEqual(self.inner.admission.held, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_sendProxyCheckIsNotLogged(self) -> None:
        """
        HAProxy's C{check send-proxy}: a v1 header with addresses, then a
        reset or a close, and no payload.  Like a LOCAL check, nothing is
        logged (no loss), nothing counted, and the wrapped factory never
        sees it.
        """
        for end in ("reset", "receiveEOF"):
            with capturedLogs() as events:
                _, transport = connectServer(self.factory, PROXY)
                transport.receive(V1)
                getattr(transport, end)()
            self.assertEqual(list(events), [])
        self.assertEqual(self.inner.accepted, 0)
        self.assertEqual(self.inner.admission.held, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_quietClientServedAtHeaderTimeout(self) -> None:
        """
        A connection whose header gives a client's address and that sends
        nothing is a client that waits: at the header timeout it is handed
        to the wrapped factory with that address, and served.
        """
        _, transport = connectServer(self.factory, PROXY)
        transport.receive(V1)
        self.assertEqual(self.inner.accepted, 0)
        with capturedLogs() as events:
            self.clock.advance(10)
        self.assertFalse(transport.disconnecting)
        [protocol] = self.inner.connections
        self.assertEqual(protocol.peer, "203.0.113.9:41234")
        self.assertEqual(events[0]["peer"], "203.0.113.9:41234")
        transport.receive(b"late\n")
        self.assertEqual(transport.value(), b"LATE\n")

    def test_checkThatSendsIsServed(self) -> None:
        """
        A LOCAL connection that goes on to send data is served, with the
        proxy's own address.
        """
        _, transport = connectServer(self.factory, PROXY)
        transport.receive(v2(command=0x0, family=0x00, body=b""))
        transport.receive(b"ping\n")
        self.assertEqual(transport.value(), b"PING\n")
        [protocol] = self.inner.connections
        self.assertEqual(protocol.peer, "127.0.0.1:50000")

    def test_silentCheckClosedAtHeaderTimeout(self) -> None:
        """
        A LOCAL connection that stays silent is closed (not logged as a
        missing header) when the header timeout expires.
        """
        _, transport = connectServer(self.factory, PROXY)
        transport.receive(v2(command=0x0, family=0x00, body=b""))
        with capturedLogs() as events:
            self.clock.advance(10)
        self.assertTrue(transport.disconnected)
        self.assertEqual(list(events), [])


class SpliceTests(SynchronousTestCase):
    """
    On Twisted's own socket transport the wrapper steps out of the way once
    the header is read.
    """

    def test_connectionDeliversToTheWrappedProtocol(self) -> None:
        """
        After the header, the connection delivers straight to the echo, whose
        transport reports the client's address from the header and writes
        to the socket itself; what followed the header and what comes next
        are echoed.
        """
        import socket as socketModule

        from twisted.internet.tcp import Connection
        from twisted.internet.testing import MemoryReactorClock

        clock = Clock()
        inner = UppercaseFactory(clock, logData=False, idleTimeout=0)
        factory = ProxyHeaderFactory(inner, clock, limit=inner.admission)
        wrapper = factory.buildProtocol(PROXY)
        assert wrapper is not None
        ours, theirs = socketModule.socketpair()
        self.addCleanup(ours.close)
        self.addCleanup(theirs.close)
        theirs.settimeout(5)
        transport = Connection(ours, wrapper, reactor=MemoryReactorClock())
        transport.connected = True
        wrapper.makeConnection(transport)
        theirs.sendall(V1 + b"first")
        transport.doRead()
        [protocol] = inner.connections
        self.assertIs(transport.protocol, protocol)
        self.assertEqual(protocol.transport.getPeer(), CLIENT)
        theirs.sendall(b" second")
        transport.doRead()
        received = b""
        while len(received) < len(b"FIRST SECOND"):
            received += theirs.recv(100)
        self.assertEqual(received, b"FIRST SECOND")
        self.assertEqual(clock.getDelayedCalls(), [])
