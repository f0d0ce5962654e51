"""
Specification of L{uppercase.testing}: what L{StreamTransport} promises
(bytes not yet sent and the flow control they cause, half-close both ways,
abort versus close, the interfaces it provides), and the real client against
the real server, joined in memory.
"""

from __future__ import annotations

import twisted.internet.protocol
import twisted.internet.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IHalfCloseableDescriptor,
    IHalfCloseableProtocol,
    IPushProducer,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from uppercase import testing
from uppercase.client import UppercaseClientProtocol
from uppercase.net.interfaces import IDirectWrite, IPendingBytes, IUnsentInKernel
from uppercase.server import UppercaseFactory
from uppercase.testing import (
    Refused,
    StreamTransport,
    asciiUpper,
    connectInMemory,
    connectProtocol,
    connectServer,
)


class PlainRecorder(Protocol):
    """
    A protocol that records what its transport tells it, and is not
    half-closeable.
    """

    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []

    def dataReceived(self, data: bytes) -> None:
        self.events.append(("data", data))

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self.events.append(("connectionLost", reason.type))


@implementer(IHalfCloseableProtocol)
class Recorder(PlainRecorder):
    """
    A half-closeable protocol that records what its transport tells it.
    """

    def readConnectionLost(self) -> None:
        self.events.append(("readConnectionLost",))

    def writeConnectionLost(self) -> None:
        self.events.append(("writeConnectionLost",))


@implementer(IPushProducer)
class Producer:
    """
    A producer that records what it is told.
    """

    def __init__(self) -> None:
        self.events: list[str] = []

    def pauseProducing(self) -> None:
        self.events.append("pause")

    def resumeProducing(self) -> None:
        self.events.append("resume")

    def stopProducing(self) -> None:
        self.events.append("stop")


def connected(
    protocol: PlainRecorder | None = None, *, peerReads: bool = False
) -> tuple[PlainRecorder, StreamTransport]:
    """
    A recording protocol (half-closeable unless given) on a new transport
    whose peer does not read unless told.
    """
    if protocol is None:
        protocol = Recorder()
    return protocol, connectProtocol(protocol, peerReads=peerReads)


class InterfaceTests(SynchronousTestCase):
    """
    L{StreamTransport} provides, completely, the interfaces it declares.
    """

    def test_verified(self) -> None:
        """
        Twisted's C{ITCPTransport} and C{IHalfCloseableDescriptor}, and
        uppercase's L{IPendingBytes}, L{IDirectWrite} and L{IUnsentInKernel},
        each verified method by method.
        """
        transport = StreamTransport()
        for interface in (
            ITCPTransport,
            IHalfCloseableDescriptor,
            IPendingBytes,
            IDirectWrite,
            IUnsentInKernel,
        ):
            self.assertTrue(verifyObject(interface, transport), interface)

    def test_noShadowedNames(self) -> None:
        """
        No name L{uppercase.testing} exports is also one of Twisted's
        C{twisted.internet.protocol} or C{twisted.internet.testing} (the
        factory type is L{testing.BuildsProtocols}, not C{ServerFactory}).
        """
        twistedNames = set(dir(twisted.internet.protocol)) | set(dir(twisted.internet.testing))
        self.assertEqual(set(testing.__all__) & twistedNames, set())
        self.assertIn("BuildsProtocols", testing.__all__)


class WritingTests(SynchronousTestCase):
    """
    What the protocol writes: L{StreamTransport.value} keeps all of it;
    L{StreamTransport.pendingBytes} counts what the peer has not read yet,
    and past C{bufferSize} of it a streaming producer is paused.
    """

    def test_peerReadsByDefault(self) -> None:
        """
        With C{peerReads=True} (the default), every byte is taken at once:
        nothing is pending.
        """
        transport = connectProtocol(Recorder())
        transport.write(b"hello ")
        transport.writeSequence([b"wor", b"ld"])
        self.assertEqual(transport.value(), b"hello world")
        self.assertEqual(transport.pendingBytes(), 0)

    def test_unsentUntilRead(self) -> None:
        """
        With C{peerReads=False}, bytes stay pending until the peer reads
        them, in order, as much as it asks for.
        """
        _, transport = connected()
        transport.write(b"hello ")
        transport.write(b"world")
        self.assertEqual(transport.pendingBytes(), 11)
        self.assertEqual(transport.read(3), b"hel")
        self.assertEqual(transport.pendingBytes(), 8)
        self.assertEqual(transport.read(), b"lo world")
        self.assertEqual(transport.pendingBytes(), 0)
        self.assertEqual(transport.value(), b"hello world")

    def test_writeDirectlyIsWrite(self) -> None:
        """
        L{StreamTransport.writeDirectly} (L{IDirectWrite}) is a write:
        recorded, and pending like any other.
        """
        _, transport = connected()
        transport.write(b"one ")
        transport.writeDirectly(b"two")
        self.assertEqual(transport.value(), b"one two")
        self.assertEqual(transport.pendingBytes(), 7)

    def test_fullBufferPausesStreamingProducer(self) -> None:
        """
        A registered streaming producer is paused once more than
        C{bufferSize} bytes are pending (not at exactly C{bufferSize}), and
        resumed once the peer has read them all (not before).
        """
        _, transport = connected()
        producer = Producer()
        transport.registerProducer(producer, True)
        transport.write(b"x" * transport.bufferSize)
        self.assertEqual(producer.events, [])
        transport.write(b"y")
        self.assertEqual(producer.events, ["pause"])
        transport.read(transport.bufferSize)
        self.assertEqual(producer.events, ["pause"])
        transport.read()
        self.assertEqual(producer.events, ["pause", "resume"])

    def test_pullProducerNotPaused(self) -> None:
        """
        A non-streaming producer is never paused by a full buffer.
        """
        _, transport = connected()
        producer = Producer()
        transport.registerProducer(producer, False)
        transport.write(b"x" * (transport.bufferSize + 1))
        self.assertEqual(producer.events, [])

    def test_unsentInKernel(self) -> None:
        """
        L{StreamTransport.unsentInKernel} is C{kernelUnsent} (0 by default,
        L{None} for "unknown"), plus one for the FIN once the sending side
        is shut down with bytes still in the kernel.
        """
        _, transport = connected()
        self.assertEqual(transport.unsentInKernel(), 0)
        transport.kernelUnsent = 10
        self.assertEqual(transport.unsentInKernel(), 10)
        transport.loseWriteConnection()
        self.assertEqual(transport.unsentInKernel(), 11)
        transport.kernelUnsent = None
        self.assertIsNone(transport.unsentInKernel())

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.one_of(
                st.binary(max_size=40).map(lambda data: ("write", data)),
                st.integers(min_value=0, max_value=60).map(lambda size: ("read", size)),
            ),
            max_size=30,
        )
    )
    def test_anyWritesAndReads(self, steps: list[tuple[str, object]]) -> None:
        """
        For any writes and partial reads: L{StreamTransport.value} is every
        write, what was read and what is pending are those bytes in order,
        and L{StreamTransport.pendingBytes} counts what was not read.
        """
        _, transport = connected()
        written = read = b""
        for action, argument in steps:
            if action == "write":
                assert isinstance(argument, bytes)
                transport.write(argument)
                written += argument
            else:
                assert isinstance(argument, int)
                read += transport.read(argument)
        self.assertEqual(transport.value(), written)
        self.assertEqual(transport.pendingBytes(), len(written) - len(read))
        self.assertEqual(read + transport.read(), written)


class ClosingTests(SynchronousTestCase):
    """
    A close waits for the pending bytes; an abort does not, and says so.
    """

    def test_closeWaitsForPending(self) -> None:
        """
        L{StreamTransport.loseConnection} with bytes pending: closing, not
        closed, until the peer reads them; then C{connectionLost} with
        L{ConnectionDone}.
        """
        protocol, transport = connected()
        transport.write(b"owed")
        transport.loseConnection()
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)
        self.assertEqual(protocol.events, [])
        self.assertEqual(transport.read(), b"owed")
        self.assertTrue(transport.disconnected)
        self.assertFalse(transport.aborted)
        self.assertEqual(protocol.events, [("connectionLost", ConnectionDone)])
        assert transport.reason is not None
        self.assertTrue(transport.reason.check(ConnectionDone))

    def test_closeAtOnceWithNothingPending(self) -> None:
        """
        With nothing pending, L{StreamTransport.loseConnection} completes at
        once.
        """
        protocol, transport = connected()
        transport.loseConnection()
        self.assertTrue(transport.disconnected)
        self.assertEqual(protocol.events, [("connectionLost", ConnectionDone)])

    def test_abortIsImmediate(self) -> None:
        """
        L{StreamTransport.abortConnection} with bytes pending ends the
        connection at once, with L{ConnectionAborted}; C{aborted} tells it
        from a close.
        """
        protocol, transport = connected()
        transport.write(b"owed")
        transport.abortConnection()
        self.assertTrue(transport.disconnected)
        self.assertTrue(transport.aborted)
        self.assertEqual(protocol.events, [("connectionLost", ConnectionAborted)])

    def test_reset(self) -> None:
        """
        The peer's L{StreamTransport.reset} ends the connection with
        L{ConnectionLost}; it is not an abort from this side.
        """
        protocol, transport = connected()
        transport.reset()
        self.assertTrue(transport.disconnected)
        self.assertFalse(transport.aborted)
        self.assertEqual(protocol.events, [("connectionLost", ConnectionLost)])

    def test_afterTheEnd(self) -> None:
        """
        Once the connection is over: writes are dropped, the peer's bytes
        and end are not delivered, and C{connectionLost} is not called
        again; the registered producer was told to stop.
        """
        protocol, transport = connected()
        producer = Producer()
        transport.registerProducer(producer, True)
        transport.loseConnection()
        transport.write(b"late")
        transport.receive(b"late")
        transport.receiveEOF()
        transport.reset()
        transport.abortConnection()
        self.assertEqual(transport.value(), b"")
        self.assertEqual(protocol.events, [("connectionLost", ConnectionDone)])
        self.assertEqual(producer.events, ["stop"])


class HalfCloseTests(SynchronousTestCase):
    """
    Either side may end its sending side alone and go on reading.
    """

    def test_ourSideEndsAfterPending(self) -> None:
        """
        L{StreamTransport.loseWriteConnection} completes once the pending
        bytes are read: C{writeDisconnected}, and the protocol's
        C{writeConnectionLost}; the connection stays open for reading, and
        later writes are dropped.
        """
        protocol, transport = connected()
        transport.write(b"last")
        transport.loseWriteConnection()
        self.assertTrue(transport.writeDisconnecting)
        self.assertFalse(transport.writeDisconnected)
        transport.read()
        self.assertTrue(transport.writeDisconnected)
        self.assertEqual(protocol.events, [("writeConnectionLost",)])
        transport.receive(b"still reading")
        transport.write(b"dropped")
        self.assertFalse(transport.disconnected)
        self.assertEqual(transport.value(), b"last")
        self.assertEqual(protocol.events[-1], ("data", b"still reading"))

    def test_peerEndsHalfCloseable(self) -> None:
        """
        L{StreamTransport.receiveEOF}: a half-closeable protocol gets
        C{readConnectionLost} and stays connected (it may still write);
        nothing the peer sends after its end is delivered.
        """
        protocol, transport = connected(peerReads=True)
        transport.receive(b"bye")
        transport.receiveEOF()
        transport.receive(b"after the end")
        transport.write(b"reply")
        self.assertTrue(transport.eofReceived)
        self.assertFalse(transport.disconnected)
        self.assertEqual(transport.value(), b"reply")
        self.assertEqual(protocol.events, [("data", b"bye"), ("readConnectionLost",)])

    def test_peerEndsPlain(self) -> None:
        """
        A protocol that is not half-closeable sees the peer's end as the
        end of the connection (L{ConnectionDone}), as Twisted does.
        """
        protocol, transport = connected(PlainRecorder())
        transport.receiveEOF()
        self.assertTrue(transport.disconnected)
        self.assertEqual(protocol.events, [("connectionLost", ConnectionDone)])


class ReadingTests(SynchronousTestCase):
    """
    What the peer sends reaches the protocol unless it paused reading.
    """

    def test_pausedReadingKeepsBytes(self) -> None:
        """
        While the protocol has paused its transport, the peer's bytes and
        end wait; resuming delivers them in order, the end last.
        """
        protocol, transport = connected()
        transport.pauseProducing()
        transport.receive(b"one")
        transport.receive(b"two")
        transport.receiveEOF()
        self.assertEqual(protocol.events, [])
        transport.resumeProducing()
        self.assertEqual(
            protocol.events, [("data", b"one"), ("data", b"two"), ("readConnectionLost",)]
        )

    def test_pauseIgnoredWhileClosing(self) -> None:
        """
        As Twisted's transports do, a closing transport ignores
        C{pauseProducing} and C{resumeProducing}.
        """
        _, transport = connected()
        transport.write(b"owed")
        transport.loseConnection()
        transport.pauseProducing()
        self.assertEqual(transport.producerState, "producing")

    def test_noProtocol(self) -> None:
        """
        Bytes for a transport no protocol was connected to are an error,
        not silently dropped.
        """
        self.assertRaises(RuntimeError, StreamTransport().receive, b"x")


class ConnectServerTests(SynchronousTestCase):
    """
    L{connectServer} accepts one connection on any factory.
    """

    def test_refused(self) -> None:
        """
        A factory that refuses (its C{buildProtocol} returns L{None}) raises
        L{Refused}.
        """

        class Refusing(Factory):
            def buildProtocol(self, addr: object) -> None:
                return None

        self.assertRaises(Refused, connectServer, Refusing())

    def test_connected(self) -> None:
        """
        The protocol the factory built is connected to the transport, with
        the peer's address.
        """
        protocol, transport = connectServer(Factory.forProtocol(Recorder))
        self.assertIs(protocol.transport, transport)
        self.assertIs(transport.protocol, protocol)
        self.assertEqual(transport.getPeer(), testing.CLIENT_ADDRESS)


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
