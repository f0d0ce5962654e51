"""
The PROXY header codec alone: what it writes it reads back, it asks for more
data until a header is whole, and anything else is an InvalidHeader.
"""

from __future__ import annotations

import ast
import inspect
import socket

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from uppercase.proxy import _codec
from uppercase.proxy._codec import (
    V2_SIGNATURE,
    Address,
    InvalidHeader,
    ProxyHeader,
    decodeHeader,
    encodeHeader,
)

ports = st.integers(min_value=0, max_value=65535)
ipv4 = st.builds(Address, st.ip_addresses(v=4).map(str), ports)
# As the socket module writes them (::ffff:0.0.0.0, not ipaddress's ::ffff:0:0).
ipv6 = st.builds(
    Address, st.ip_addresses(v=6).map(lambda a: socket.inet_ntop(socket.AF_INET6, a.packed)), ports
)
pairs = st.one_of(st.tuples(ipv4, ipv4), st.tuples(ipv6, ipv6))


class RoundTripTests(SynchronousTestCase):
    """
    L{decodeHeader} reads back what L{encodeHeader} writes.
    """

    @given(st.sampled_from([1, 2]), pairs, st.binary(max_size=20))
    def test_addressesComeBack(
        self, version: int, pair: tuple[Address, Address], after: bytes
    ) -> None:
        """
        Any TCP addresses, either version, whatever data follows: the same
        addresses, and the length of the header alone.
        """
        source, destination = pair
        header = encodeHeader(version, source, destination)
        self.assertEqual(
            decodeHeader(header + after),
            ProxyHeader(version, source, destination, len(header)),
        )

    @given(st.sampled_from([1, 2]), pairs)
    def test_everyPrefixNeedsMore(self, version: int, pair: tuple[Address, Address]) -> None:
        """
        Any non-empty part of a header, short of the whole, is "need more
        data", never an error.
        """
        header = encodeHeader(version, *pair)
        for end in range(1, len(header)):
            self.assertIsNone(decodeHeader(header[:end]), header[:end])

    def test_noAddresses(self) -> None:
        """
        Without addresses (or with two families), v1 writes C{UNKNOWN} and v2
        C{LOCAL}; both read back as the connection's own addresses standing.
        """
        self.assertEqual(encodeHeader(1, None, None), b"PROXY UNKNOWN\r\n")
        self.assertEqual(decodeHeader(b"PROXY UNKNOWN\r\nx"), ProxyHeader(1, None, None, 15))
        local = encodeHeader(2, Address("127.0.0.1", 1), Address("::1", 2))
        self.assertEqual(local, V2_SIGNATURE + b"\x20\x00\x00\x00")
        self.assertEqual(decodeHeader(local), ProxyHeader(2, None, None, 16))

    def test_v1AsHAProxyWritesIt(self) -> None:
        """
        The v1 header is the spec's text line.
        """
        self.assertEqual(
            encodeHeader(1, Address("192.0.2.7", 40000), Address("127.0.0.1", 9527)),
            b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 9527\r\n",
        )


class InvalidTests(SynchronousTestCase):
    """
    Bytes that cannot start a header raise L{InvalidHeader}, and nothing else.
    """

    @given(st.binary(min_size=1, max_size=120))
    def test_anyBytes(self, data: bytes) -> None:
        """
        Any bytes: a header, "need more data", or L{InvalidHeader}.
        """
        try:
            result = decodeHeader(data)
        except InvalidHeader:
            return
        if result is not None:
            self.assertIsInstance(result, ProxyHeader)
            self.assertLessEqual(result.length, len(data))

    def test_examples(self) -> None:
        """
        Not PROXY at all; a v1 line with a bad port; a v1 line too long; v2
        with an unknown command.
        """
        for data in (
            b"GET / HTTP/1.1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY TCP4 " + b"1" * 120,
            V2_SIGNATURE + b"\x2f\x11\x00\x00",
        ):
            self.assertRaises(InvalidHeader, decodeHeader, data)

    def test_unknownVersion(self) -> None:
        """
        Writing a version other than 1 or 2 is a L{ValueError}.
        """
        self.assertRaises(ValueError, encodeHeader, 3, None, None)


class PureTests(SynchronousTestCase):
    """
    The codec is sans-IO.
    """

    def test_importsNoTwisted(self) -> None:
        """
        The codec's module imports nothing of Twisted (nor of uppercase).
        """
        tree = ast.parse(inspect.getsource(_codec))
        imported = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        self.assertEqual(
            {name for name in imported if name.split(".")[0] in ("twisted", "uppercase")}, set()
        )
