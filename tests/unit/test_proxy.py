"""The PROXY protocol header parser and wrapper, in memory."""

from __future__ import annotations

import socket
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from uppercase._proxy import InvalidHeader, ProxyHeaderFactory, parseHeader
from uppercase.server import UppercaseFactory

from ._transports import BufferingTransport

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


class ParseTests(SynchronousTestCase):
    """
    Headers of both versions are parsed into the client's address.
    """

    def test_v1(self) -> None:
        """
        A v1 TCP4 header gives source and destination; its length is where
        the payload starts.
        """
        addresses, length = parseHeader(V1 + b"payload")
        self.assertEqual(addresses, (CLIENT, IPv4Address("TCP", "198.51.100.1", 9527)))
        self.assertEqual(length, len(V1))

    def test_v1IPv6(self) -> None:
        """
        A v1 TCP6 header gives IPv6 addresses, normalised.
        """
        header = b"PROXY TCP6 2001:db8:0::1 2001:db8::2 5 6\r\n"
        addresses, _ = parseHeader(header)
        self.assertEqual(addresses[0], IPv6Address("TCP", "2001:db8::1", 5))

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
        addresses, length = parseHeader(header + b"payload")
        self.assertEqual(addresses[0], CLIENT)
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
        addresses, length = parseHeader(header)
        self.assertEqual(addresses[0], IPv6Address("TCP", "2001:db8::7", 7))
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
        Anything else is rejected: plain data, a malformed v1 line, a v1
        line without its end within 107 bytes, a bad v2 version.
        """
        for data in [
            b"hello\n",
            b"PROXY TCP4 1.2.3 4.5.6.7 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 4.5.6.7 1 99999\r\n",
            b"PROXY " + b"x" * 120,
            b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x00",
        ]:
            self.assertRaises(InvalidHeader, parseHeader, data)


class WrapperTests(SynchronousTestCase):
    """
    The wrapper connects the echo protocol only once the header is read,
    with the client's address, and passes half-close through.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.inner = UppercaseFactory(clock=self.clock, logData=False, idleTimeout=0)
        self.factory = ProxyHeaderFactory(self.inner, self.clock, headerTimeout=5)
        self.wrapper = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
        self.transport = BufferingTransport("127.0.0.1", 50000)
        self.wrapper.makeConnection(self.transport)

    def test_clientAddressSeenByProtocol(self) -> None:
        """
        The echo protocol is connected after the header, sees the client's
        address, and gets the payload that followed the header.
        """
        self.assertEqual(self.inner.connections, set())
        self.wrapper.dataReceived(V1[:10])
        self.wrapper.dataReceived(V1[10:] + b"hi")
        [protocol] = self.inner.connections
        self.assertEqual(protocol.transport.getPeer(), CLIENT)
        self.assertEqual(self.transport.value(), b"HI")

    @settings(max_examples=100, deadline=None)
    @given(st.data())
    def test_anySplit(self, data: st.DataObject) -> None:
        """
        However the header and payload are split, the payload comes back
        whole and uppercased.
        """
        stream = v2() + b"payload"
        cuts = sorted(data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=6)))
        wrapper = self.factory.buildProtocol(None)
        transport = BufferingTransport()
        wrapper.makeConnection(transport)
        for start, end in zip([0] + cuts, cuts + [len(stream)]):
            if start < end:
                wrapper.dataReceived(stream[start:end])
        self.assertEqual(transport.value(), b"PAYLOAD")

    def test_halfClosePassedThrough(self) -> None:
        """
        The wrapper is half-closeable, and the peer's EOF reaches the echo
        protocol, which closes after its replies.
        """
        self.assertTrue(IHalfCloseableProtocol.providedBy(self.wrapper))
        self.wrapper.dataReceived(V1 + b"bye")
        self.wrapper.readConnectionLost()
        self.assertEqual(self.transport.value(), b"BYE")
        self.assertTrue(self.transport.disconnecting)
        self.assertFalse(self.transport.disconnected)

    def test_invalidHeaderAborts(self) -> None:
        """
        A connection that does not start with a header is aborted, and the
        echo protocol never sees it.
        """
        self.wrapper.dataReceived(b"GET / HTTP/1.1\r\n")
        self.assertTrue(self.transport.disconnected)
        self.assertEqual(self.inner.connections, set())

    def test_headerTimeout(self) -> None:
        """
        A connection that sends no header within the timeout is aborted;
        closing cancels the timer.
        """
        self.clock.advance(5)
        self.assertTrue(self.transport.disconnected)
        self.wrapper.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])
