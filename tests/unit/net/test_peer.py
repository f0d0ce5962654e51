"""
Specification of L{uppercase.net.peer}: how a peer's address is shown and counted.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.trial.unittest import SynchronousTestCase

from uppercase.net.peer import describePeer, formatPeer, unmapped


class PeerTests(SynchronousTestCase):
    """
    How peers are named in logs and counted by per-address limits.
    """

    def test_mappedIsIPv4(self) -> None:
        """
        C{::ffff:1.2.3.4} is C{1.2.3.4}; other IPv6 addresses are unchanged.
        """
        self.assertEqual(unmapped("::ffff:1.2.3.4"), "1.2.3.4")
        self.assertEqual(unmapped("::FFFF:10.0.0.1"), "10.0.0.1")
        self.assertEqual(unmapped("::1"), "::1")
        self.assertEqual(unmapped("2001:db8::ffff:1.2.3.4"), "2001:db8::ffff:1.2.3.4")
        self.assertEqual(describePeer(IPv6Address("TCP", "::ffff:1.2.3.4", 5)), ("1.2.3.4", 5))

    def test_kinds(self) -> None:
        """
        IPv4 and IPv6 peers have a host and port; UNIX peers are one host,
        with no port.
        """
        self.assertEqual(describePeer(IPv4Address("TCP", "1.2.3.4", 5)), ("1.2.3.4", 5))
        self.assertEqual(describePeer(UNIXAddress(None)), ("unix", None))
        self.assertEqual(formatPeer("::1", 5), "[::1]:5")
        self.assertEqual(formatPeer("1.2.3.4", 5), "1.2.3.4:5")
