"""
Specification of the echo protocols on their own: C{Factory.forProtocol} on
an in-memory transport, no server policies.  The uppercase and the plain
echo share their flow control, half-close and graceful close: those tests run
on both.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.interfaces import IHalfCloseableProtocol, ISSLTransport
from twisted.internet.protocol import Factory
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import alsoProvides

from uppercase.echo import EchoProtocol, StreamEcho, UppercaseProtocol
from uppercase.testing import StreamTransport, asciiUpper, connectServer


def echo(
    peerReads: bool = True, protocolClass: type[StreamEcho] = UppercaseProtocol
) -> tuple[StreamEcho, StreamTransport]:
    """
    One echo connection, built the way a user would build it.
    """
    protocol, transport = connectServer(Factory.forProtocol(protocolClass), peerReads=peerReads)
    assert isinstance(protocol, protocolClass)
    return protocol, transport


class UppercaseEcho:
    """
    Shared tests run on the uppercase echo (L{UppercaseProtocol}).
    """

    reply: Callable[[bytes], bytes] = staticmethod(asciiUpper)

    def echo(self, peerReads: bool = True) -> tuple[StreamEcho, StreamTransport]:
        return echo(peerReads, UppercaseProtocol)


class PlainEcho:
    """
    Shared tests run on the plain echo (L{EchoProtocol}).
    """

    reply: Callable[[bytes], bytes] = staticmethod(bytes)

    def echo(self, peerReads: bool = True) -> tuple[StreamEcho, StreamTransport]:
        return echo(peerReads, EchoProtocol)


class EchoTests(SynchronousTestCase):
    """
    Every byte comes back, ASCII-uppercased, whatever the chunking.
    """

    def test_lowercaseBecomesUppercase(self) -> None:
        """
        C{hello\\n} comes back as C{HELLO\\n}.
        """
        _, transport = echo()
        transport.receive(b"hello\n")
        self.assertEqual(transport.value(), b"HELLO\n")

    def test_allByteValues(self) -> None:
        """
        Only C{a}-C{z} change; the 230 other byte values, including
        non-ASCII letters of Latin-1 and UTF-8, come back unchanged.
        """
        _, transport = echo()
        transport.receive(bytes(range(256)))
        out = transport.value()
        self.assertEqual(len(out), 256)
        for value in range(256):
            expected = value - 32 if ord("a") <= value <= ord("z") else value
            self.assertEqual(out[value], expected, f"byte {value}")

    def test_fragmentedInput(self) -> None:
        """
        Input delivered one byte at a time produces the same output as
        input delivered at once: nothing is held back or reordered.
        """
        _, transport = echo()
        data = b"Mixed CASE \x00\xff\xe9t\xc3\xa9 text\r\n" * 3
        for i in range(len(data)):
            transport.receive(data[i : i + 1])
            self.assertEqual(transport.value(), asciiUpper(data[: i + 1]))

    def test_utf8NotDecoded(self) -> None:
        """
        Multi-byte UTF-8 split across chunks is passed through byte for byte,
        never decoded (C{é} stays C{é}, it does not become C{É}).
        """
        _, transport = echo()
        data = "café".encode()
        transport.receive(data[:4])
        transport.receive(data[4:])
        self.assertEqual(transport.value(), b"CAF" + "é".encode())

    def test_countsEchoedBytes(self) -> None:
        """
        C{echoed} counts the bytes received and sent back.
        """
        protocol, transport = echo()
        transport.receive(b"abc")
        transport.receive(b"de")
        self.assertEqual(protocol.echoed, 5)


class PlainEchoTests(SynchronousTestCase):
    """
    The plain echo sends every byte back unchanged (RFC 862), whatever the
    chunking, without copying it.
    """

    def test_allByteValuesUnchanged(self) -> None:
        """
        All 256 byte values, C{a}-C{z} included, come back as they were.
        """
        _, transport = echo(protocolClass=EchoProtocol)
        data = bytes(range(256)) * 2
        transport.receive(data)
        self.assertEqual(transport.value(), data)

    def test_fragmentedInput(self) -> None:
        """
        Input delivered one byte at a time comes back the same, in order,
        nothing held back.
        """
        _, transport = echo(protocolClass=EchoProtocol)
        data = b"Mixed CASE \x00\xff\xe9t\xc3\xa9 text\r\n" * 3
        for i in range(len(data)):
            transport.receive(data[i : i + 1])
            self.assertEqual(transport.value(), data[: i + 1])

    def test_sendsTheBytesReceived(self) -> None:
        """
        What is sent is the very bytes object received: no copy is made.
        """
        protocol = EchoProtocol()
        sent: list[bytes] = []
        protocol.send = sent.append
        data = b"hello\n" * 100
        protocol.dataReceived(data)
        self.assertIs(sent[0], data)
        self.assertEqual(protocol.echoed, len(data))

    def test_notAnUppercaseProtocol(self) -> None:
        """
        The two echoes are siblings: a plain echo is no
        L{UppercaseProtocol}, and both are L{StreamEcho}s.
        """
        self.assertNotIsInstance(EchoProtocol(), UppercaseProtocol)
        self.assertIsInstance(EchoProtocol(), StreamEcho)
        self.assertIsInstance(UppercaseProtocol(), StreamEcho)


class HalfCloseTests(UppercaseEcho, SynchronousTestCase):
    """
    When the peer ends its sending side, everything owed is sent and then
    the connection closes.
    """

    def test_providesHalfCloseableProtocol(self) -> None:
        """
        The protocol declares L{IHalfCloseableProtocol}; without it Twisted
        closes the connection at the peer's EOF and drops unsent replies.
        """
        protocol, _ = self.echo()
        self.assertTrue(IHalfCloseableProtocol.providedBy(protocol))

    def test_repliesSentBeforeClose(self) -> None:
        """
        After the peer's EOF, replies not yet sent are sent, and only then is
        the connection closed, cleanly.
        """
        protocol, transport = self.echo(peerReads=False)
        transport.receive(b"hello\n")
        transport.receiveEOF()
        self.assertTrue(protocol.peerFinished)
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)
        self.assertEqual(transport.read(), self.reply(b"hello\n"))
        self.assertTrue(transport.disconnected)
        self.assertFalse(transport.aborted)

    def test_eofWhileThrottledStillDelivers(self) -> None:
        """
        An EOF that arrives while reading is paused comes after the bytes
        sent before it: every reply is delivered, then the close.
        """
        _, transport = self.echo(peerReads=False)
        data = b"z" * (4 * 65536)
        transport.receive(data)
        transport.receive(b"tail")
        transport.receiveEOF()
        received = b""
        while not transport.disconnected:
            received += transport.read()
        self.assertEqual(received, self.reply(data + b"tail"))
        self.assertFalse(transport.aborted)


class FinishTests(UppercaseEcho, SynchronousTestCase):
    """
    L{StreamEcho.finish} closes gracefully: what was echoed is
    delivered, the stream ends, and what the peer still sends is discarded
    until it closes too.
    """

    def test_nothingEchoedHalfCloses(self) -> None:
        """
        A connection that has echoed nothing half-closes too, and discards
        what the peer sends until it closes: its input may be waiting
        unread, and closing with unread input would be a reset.
        """
        protocol, transport = self.echo()
        protocol.finish()
        self.assertTrue(transport.writeDisconnected)
        self.assertFalse(transport.disconnected)
        transport.receive(b"unread")
        self.assertEqual((protocol.echoed, protocol.discarded), (0, 6))
        transport.receiveEOF()
        self.assertTrue(transport.disconnected)
        self.assertFalse(transport.aborted)

    def test_nothingWaitingCloses(self) -> None:
        """
        A connection that has echoed nothing, closed by a caller that knows
        no input waits unread (an idle one), is simply closed.
        """
        protocol, transport = self.echo()
        protocol.finish(inputMayWait=False)
        self.assertTrue(transport.disconnected)
        self.assertFalse(transport.writeDisconnecting)

    def test_halfClosesAndDiscards(self) -> None:
        """
        After echoing, C{finish} half-closes once the replies are sent (the
        peer reads them, then sees the end of the stream), keeps reading,
        discards what arrives, and closes when the peer ends its side.
        """
        protocol, transport = self.echo(peerReads=False)
        transport.receive(b"owed")
        protocol.finish()
        self.assertTrue(transport.writeDisconnecting)
        self.assertFalse(transport.writeDisconnected, "FIN before the replies")
        transport.receive(b"discarded")
        self.assertEqual(transport.read(), self.reply(b"owed"))
        self.assertTrue(transport.writeDisconnected)
        self.assertEqual((protocol.echoed, protocol.discarded), (4, 9))
        self.assertFalse(transport.disconnected)
        transport.receiveEOF()
        self.assertTrue(transport.disconnected)
        self.assertFalse(transport.aborted)

    def test_resumesPausedReading(self) -> None:
        """
        A connection whose reading was paused by flow control reads again
        after C{finish}, so that the peer's end can be seen; what waited is
        discarded, not echoed.
        """
        protocol, transport = self.echo(peerReads=False)
        while transport.producerState == "producing":
            transport.receive(b"a" * 8192)
        transport.receive(b"waiting")
        echoed = protocol.echoed
        protocol.finish()
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(protocol.echoed, echoed)
        self.assertEqual(protocol.discarded, len(b"waiting"))

    def test_tlsIsNeverHalfClosed(self) -> None:
        """
        On a TLS transport, C{finish} closes (TLS's C{close_notify} covers
        both directions) and never half-closes the stream beneath it, even
        though the transport also provides the TCP interfaces.
        """
        protocol, transport = self.echo(peerReads=False)
        alsoProvides(transport, ISSLTransport)
        transport.receive(b"owed")
        protocol.finish()
        self.assertFalse(transport.writeDisconnecting)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.read(), self.reply(b"owed"))
        self.assertTrue(transport.disconnected)

    def test_onceOnly(self) -> None:
        """
        A second C{finish} does nothing more.
        """
        protocol, transport = self.echo(peerReads=False)
        transport.receive(b"x")
        protocol.finish()
        protocol.finish()
        self.assertFalse(transport.disconnecting)


class PlainHalfCloseTests(PlainEcho, HalfCloseTests):
    """
    The plain echo half-closes as the uppercase one does.
    """


class PlainFinishTests(PlainEcho, FinishTests):
    """
    The plain echo closes gracefully as the uppercase one does.
    """
