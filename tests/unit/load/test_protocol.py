"""
The load mode's protocol: what it sends, how it checks every reply byte as
it arrives, and how it locates a wrong one.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from uppercase.load.connection import ILoadConnection
from uppercase.load.payload import Payloads
from uppercase.load.protocol import LoadProtocol, Owner
from uppercase.load.stats import LoadStats
from uppercase.testing import StreamTransport, asciiUpper


class Recorder(Owner):
    """
    An owner that remembers what its protocols told it.
    """

    def __init__(self) -> None:
        self.rooms = 0
        self.lostReasons: list[Failure] = []

    def room(self, protocol: ILoadConnection) -> None:
        self.rooms += 1

    def lost(self, protocol: ILoadConnection, reason: Failure) -> None:
        self.lostReasons.append(reason)


class LoadProtocolTests(SynchronousTestCase):
    """
    L{LoadProtocol} sends what it is told and checks replies incrementally.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.stats = LoadStats()
        self.owner = Recorder()
        self.payloads = Payloads("random", 32, seed=1)

    def connect(self, number: int = 1, pipeline: int = 4) -> tuple[LoadProtocol, StreamTransport]:
        protocol = LoadProtocol(number, self.payloads, self.stats, self.clock, self.owner, pipeline)
        transport = StreamTransport(peerReads=True)
        transport.connect(protocol)
        return protocol, transport

    def test_sendsTheMessages(self) -> None:
        """
        C{send(3, ...)} writes messages 1 to 3 of the connection, in order.
        """
        protocol, transport = self.connect(number=2)
        protocol.send(3, 0.0)
        expected = b"".join(self.payloads.message(2, n)[0] for n in (1, 2, 3))
        self.assertEqual(transport.value(), expected)
        self.assertEqual((protocol.sent, protocol.inFlight, self.stats.sent), (3, 3, 3))

    def test_roomIsThePipeline(self) -> None:
        """
        Room is the pipeline less the messages in flight; none while the
        transport's buffer is full.
        """
        protocol, transport = self.connect(pipeline=4)
        protocol.send(3, 0.0)
        self.assertEqual(protocol.room(), 1)
        protocol.pauseProducing()
        self.assertEqual(protocol.room(), 0)
        protocol.resumeProducing()
        self.assertEqual(protocol.room(), 1)
        self.assertEqual(self.owner.rooms, 1)

    def test_verifiedOneByteAtATime(self) -> None:
        """
        Replies that arrive one byte at a time are verified, each counted
        once, and the owner hears of the room they free.
        """
        protocol, transport = self.connect()
        protocol.send(2, 0.0)
        for byte in asciiUpper(transport.value()):
            protocol.dataReceived(bytes([byte]))
        self.assertEqual((self.stats.verified, self.stats.failed), (2, 0))
        self.assertEqual(protocol.inFlight, 0)
        self.assertEqual(self.owner.rooms, 2)

    def test_latencyFromScheduledTime(self) -> None:
        """
        A message scheduled at t=1 and answered at t=1.25 counts 250 ms,
        however late it was sent.
        """
        self.clock.advance(1.2)
        protocol, transport = self.connect()
        protocol.send(1, 1.0)
        self.clock.advance(0.05)
        protocol.dataReceived(asciiUpper(transport.value()))
        self.stats.roll()
        self.assertApproximates(self.stats.total.percentile(50), 250.0, 0.25)

    def test_warmupLeftOut(self) -> None:
        """
        Messages scheduled before C{measureFrom} are verified but their
        latencies are not recorded, nor counted as measured.
        """
        self.stats.measureFrom = 5.0
        protocol, transport = self.connect()
        protocol.send(1, 4.0)
        protocol.send(1, 5.0)
        self.clock.advance(6)
        protocol.dataReceived(asciiUpper(transport.value()))
        self.stats.roll()
        self.assertEqual((self.stats.verified, self.stats.measured), (2, 1))
        self.assertEqual(self.stats.total.count, 1)

    def test_wrongByteLocated(self) -> None:
        """
        A wrong byte in the second message is reported with the
        connection, the message number and its offset in the stream and in
        the message; the message counts as failed, the other as verified.
        """
        protocol, transport = self.connect(number=7)
        protocol.send(2, 0.0)
        reply = bytearray(asciiUpper(transport.value()))
        reply[32 + 5] ^= 0xFF
        protocol.dataReceived(bytes(reply))
        [mismatch] = self.stats.mismatches
        self.assertEqual(
            (mismatch.connection, mismatch.message, mismatch.offset, mismatch.messageOffset),
            (7, 2, 37, 5),
        )
        self.assertEqual((self.stats.verified, self.stats.failed), (1, 1))

    def test_oneMismatchPerMessage(self) -> None:
        """
        A message with several wrong bytes is one mismatch.
        """
        protocol, transport = self.connect()
        protocol.send(1, 0.0)
        protocol.dataReceived(transport.value())  # not uppercased at all
        self.assertEqual((self.stats.mismatchCount, self.stats.failed), (1, 1))

    def test_unexpectedBytes(self) -> None:
        """
        Bytes while nothing is in flight are one mismatch that says no
        reply was due.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"surprise")
        [mismatch] = self.stats.mismatches
        self.assertIn("while no reply was due", str(mismatch))

    def test_closeWaitsForReplies(self) -> None:
        """
        C{close} with a message in flight closes once its reply is in.
        """
        protocol, transport = self.connect()
        protocol.send(1, 0.0)
        protocol.close()
        self.assertFalse(transport.disconnecting)
        protocol.dataReceived(asciiUpper(transport.value()))
        self.assertTrue(transport.disconnected)
        self.assertEqual(len(self.owner.lostReasons), 1)
        self.assertTrue(self.owner.lostReasons[0].check(ConnectionDone))

    def test_noDelayRefused(self) -> None:
        """
        A transport that says it is TCP but refuses TCP_NODELAY (a UNIX
        socket under Twisted 24.7) still connects and sends.
        """

        class Refusing(StreamTransport):
            def setTcpNoDelay(self, enabled: bool) -> None:
                raise OSError(95, "Operation not supported")

        protocol = LoadProtocol(1, self.payloads, self.stats, self.clock, self.owner)
        transport = Refusing()
        transport.connect(protocol)
        protocol.send(1, 0.0)
        self.assertEqual(len(transport.value()), 32)

    def test_preambleFirst(self) -> None:
        """
        The preamble (a PROXY header) is written before any message.
        """
        protocol = LoadProtocol(
            1,
            self.payloads,
            self.stats,
            self.clock,
            self.owner,
            preamble=lambda transport: b"PROXY UNKNOWN\r\n",
        )
        transport = StreamTransport()
        transport.connect(protocol)
        protocol.send(1, 0.0)
        self.assertTrue(transport.value().startswith(b"PROXY UNKNOWN\r\n"))
        self.assertEqual(len(transport.value()), 15 + 32)


class CorruptionTests(SynchronousTestCase):
    """
    Whatever the payload, the chunking and where a byte is corrupted, the
    mismatch is reported at exactly that connection, message and offset.
    """

    @settings(max_examples=200, deadline=None)
    @given(
        seed=st.integers(0, 2**32),
        size=st.integers(1, 300),
        count=st.integers(1, 12),
        connection=st.integers(1, 1000),
        data=st.data(),
    )
    def test_corruptedByteLocatedExactly(
        self, seed: int, size: int, count: int, connection: int, data: st.DataObject
    ) -> None:
        """
        C{count} random messages of C{size} bytes, sent in random batches;
        the reply stream is cut into random chunks and one byte at a random offset is changed: one
        mismatch, at that connection, message (offset // size + 1) and
        offset; every other message verified.
        """
        stats = LoadStats()
        protocol = LoadProtocol(
            connection, Payloads("random", size, seed), stats, Clock(), Recorder(), 0
        )
        transport = StreamTransport()
        transport.connect(protocol)
        sent = 0
        while sent < count:  # in batches, as a schedule sends them
            batch = min(count - sent, data.draw(st.integers(1, 4), label="batch"))
            protocol.send(batch, 0.0)
            sent += batch
        reply = bytearray(asciiUpper(transport.value()))
        offset = data.draw(st.integers(0, len(reply) - 1), label="offset")
        reply[offset] ^= data.draw(st.integers(1, 255), label="xor")
        cuts = sorted(data.draw(st.lists(st.integers(0, len(reply)), max_size=20), label="cuts"))
        for start, end in zip([0, *cuts], [*cuts, len(reply)]):
            protocol.dataReceived(bytes(reply[start:end]))
        self.assertEqual(stats.mismatchCount, 1)
        [mismatch] = stats.mismatches
        self.assertEqual(
            (mismatch.connection, mismatch.message, mismatch.offset, mismatch.messageOffset),
            (connection, offset // size + 1, offset, offset % size),
        )
        index = mismatch.messageOffset - mismatch.excerptStart
        self.assertEqual(mismatch.received[index], reply[offset])
        self.assertEqual((stats.verified, stats.failed), (count - 1, 1))
