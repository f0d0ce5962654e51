"""The real client against the real server, joined in memory by iosim."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.test.iosim import connectedServerAndClient
from twisted.trial.unittest import SynchronousTestCase

from uppercase.client import UppercaseClientProtocol
from uppercase.server import UppercaseFactory

from ._transports import BufferingTransport, ascii_upper


class ClientAgainstServerTests(SynchronousTestCase):
    """
    The client and server agree on the protocol.
    """

    def test_nineHellos(self) -> None:
        """
        The reference session: nine C{hello}s, one second apart, each
        answered by C{HELLO}; the client then closes and succeeds.
        """
        clock = Clock()
        replies: list[bytes] = []
        factory = UppercaseFactory(clock=clock, logData=False)
        client, server, pump = connectedServerAndClient(
            lambda: factory.buildProtocol(None),
            lambda: UppercaseClientProtocol(
                b"hello",
                clock=clock,
                onReply=lambda seq, reply, rtt: replies.append(reply),
            ),
            clock=clock,
        )
        for second in range(9):
            pump.flush()
            self.assertEqual(len(replies), second + 1)
            clock.advance(1)
        pump.flush()
        self.assertEqual(replies, [b"HELLO\n"] * 9)
        self.assertTrue(client.transport.disconnecting)
        self.assertEqual(server.received, 9 * 6)

    def test_binaryMessage(self) -> None:
        """
        A message with non-ASCII and control bytes round-trips and verifies.
        """
        clock = Clock()
        message = bytes(range(256)).replace(b"\n", b"")
        replies: list[bytes] = []
        client, server, pump = connectedServerAndClient(
            lambda: UppercaseFactory(clock=clock, logData=False).buildProtocol(None),
            lambda: UppercaseClientProtocol(
                message,
                count=1,
                clock=clock,
                onReply=lambda seq, reply, rtt: replies.append(reply),
            ),
            clock=clock,
        )
        pump.flush()
        self.assertEqual(replies, [ascii_upper(message + b"\n")])


class PropertyTests(SynchronousTestCase):
    """
    For any bytes and any split into chunks, the output is their
    ASCII-uppercase.
    """

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.binary(max_size=64), max_size=40))
    def test_anyChunking(self, chunks: list[bytes]) -> None:
        """
        Feeding the chunks one by one yields the uppercase of their
        concatenation, byte for byte.
        """
        protocol = UppercaseFactory(clock=Clock(), logData=False, idleTimeout=0).buildProtocol(None)
        transport = BufferingTransport()
        protocol.makeConnection(transport)
        for chunk in chunks:
            protocol.dataReceived(chunk)
        self.assertEqual(transport.value(), ascii_upper(b"".join(chunks)))
