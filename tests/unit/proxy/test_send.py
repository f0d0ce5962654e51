"""
Specification of L{uppercase.proxy._send}: the PROXY header a client sends first.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from uppercase.proxy import parseHeader
from uppercase.proxy._send import proxyHeader


class SendProxyTests(SynchronousTestCase):
    """
    The PROXY headers the client sends are the ones our server's parser
    (and HAProxy's) reads.
    """

    def test_roundTrip(self) -> None:
        """
        v1 and v2, IPv4 and IPv6: the parser reads back the addresses.
        """
        from twisted.internet.address import IPv4Address, IPv6Address

        for version in ("v1", "v2"):
            for source, destination in (
                (IPv4Address("TCP", "127.0.0.1", 40000), IPv4Address("TCP", "127.0.0.2", 9527)),
                (IPv6Address("TCP", "::1", 40000), IPv6Address("TCP", "::2", 9527)),
            ):
                header = proxyHeader(version, source, destination)
                parsed = parseHeader(header)
                assert parsed is not None
                addresses, length = parsed
                self.assertEqual(length, len(header))
                assert addresses is not None
                self.assertEqual(
                    [(a.host, a.port) for a in addresses],  # type: ignore[attr-defined]
                    [(source.host, source.port), (destination.host, destination.port)],
                )

    def test_notTCP(self) -> None:
        """
        A UNIX connection sends v1's UNKNOWN or v2's LOCAL: the server
        keeps the connection's own addresses.
        """
        from twisted.internet.address import UNIXAddress

        for version in ("v1", "v2"):
            header = proxyHeader(version, UNIXAddress(b"/a"), UNIXAddress(b"/b"))
            self.assertEqual(parseHeader(header), (None, len(header)))
