"""The real client against the real server, joined in memory by uppercase.testing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from uppercase.client import UppercaseClientProtocol
from uppercase.server import UppercaseFactory
from uppercase.testing import asciiUpper, connectInMemory, connectServer


class ClientAgainstServerTests(SynchronousTestCase):
    """
    The client and server agree on the protocol.
    """

    def test_nineHellos(self) -> None:
        """
        The reference session: nine C{hello}s, one second apart, each
        answered by C{HELLO}; the client then closes, the server closes
        after it, and the client succeeds.
        """
        clock = Clock()
        replies: list[bytes] = []
        factory = UppercaseFactory(clock, logData=False)
        client = UppercaseClientProtocol(
            b"hello", clock=clock, onReply=lambda seq, reply, rtt: replies.append(reply)
        )
        connection = connectInMemory(factory, client)
        for second in range(9):
            connection.flush()
            self.assertEqual(len(replies), second + 1)
            clock.advance(1)
        connection.flush()
        self.assertEqual(replies, [b"HELLO\n"] * 9)
        self.successResultOf(client.done)
        self.assertTrue(connection.serverTransport.disconnected)
        self.assertEqual(factory.byteCounts(), (9 * 6, 9 * 6))

    def test_binaryMessage(self) -> None:
        """
        A message with non-ASCII and control bytes round-trips and verifies.
        """
        clock = Clock()
        message = bytes(range(256)).replace(b"\n", b"")
        replies: list[bytes] = []
        client = UppercaseClientProtocol(
            message, count=1, clock=clock, onReply=lambda seq, reply, rtt: replies.append(reply)
        )
        connectInMemory(UppercaseFactory(clock, logData=False), client)
        self.assertEqual(replies, [asciiUpper(message + b"\n")])
        self.successResultOf(client.done)


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
        factory = UppercaseFactory(Clock(), logData=False, idleTimeout=0)
        _, transport = connectServer(factory)
        for chunk in chunks:
            transport.receive(chunk)
        self.assertEqual(transport.value(), asciiUpper(b"".join(chunks)))
