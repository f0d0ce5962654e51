"""
Specification of L{uppercase.load.payload}: what the load mode sends, and what it expects back.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from uppercase.load.payload import HEADER, Payloads, StreamPattern, randomBlock
from uppercase.testing import asciiUpper


class PayloadTests(SynchronousTestCase):
    """
    Random payloads are seeded, cover every byte value, and differ per
    connection and message; text payloads repeat the message.
    """

    def test_blockHasEveryByteValue(self) -> None:
        """
        The random block holds all 256 byte values, whatever the seed.
        """
        for seed in (0, 1, 12345):
            self.assertEqual(set(randomBlock(seed, 4096)), set(range(256)))

    def test_seeded(self) -> None:
        """
        The same seed gives the same messages; another seed, others.
        """
        self.assertEqual(
            Payloads("random", 100, seed=7).message(1, 1), Payloads("random", 100, 7).message(1, 1)
        )
        self.assertNotEqual(
            Payloads("random", 100, seed=7).message(1, 1), Payloads("random", 100, 8).message(1, 1)
        )

    def test_distinctPerConnectionAndMessage(self) -> None:
        """
        No two of 20 connections x 200 messages share their content, each
        has the size asked for, and each expected reply is its ASCII
        uppercase.
        """
        payloads = Payloads("random", 48, seed=3)
        seen = set()
        for connection in range(1, 21):
            for number in range(1, 201):
                message, expected = payloads.message(connection, number)
                self.assertEqual(len(message), 48)
                self.assertEqual(expected, asciiUpper(message))
                seen.add(message)
        self.assertEqual(len(seen), 20 * 200)

    def test_everyRandomMessageHasALowercaseLetter(self) -> None:
        """
        Each random message starts with a lowercase letter, so that a peer
        that does not uppercase gets every message wrong.
        """
        payloads = Payloads("random", HEADER.size, seed=0)
        for number in range(1, 500):
            message, expected = payloads.message(1, number)
            self.assertTrue(97 <= message[0] <= 122, message)
            self.assertNotEqual(message, expected)

    def test_messagesTogetherCoverEveryByteValue(self) -> None:
        """
        Over a run's messages, every byte value is sent.
        """
        payloads = Payloads("random", 1024, seed=5)
        sent: set[int] = set()
        for number in range(1, 2000):
            sent.update(payloads.message(1, number)[0])
        self.assertEqual(sent, set(range(256)))

    def test_text(self) -> None:
        """
        A text payload is the message repeated to the size, ending with a
        newline; the same for every message.
        """
        payloads = Payloads("text", 14, text=b"hello")
        self.assertEqual(payloads.message(1, 1), (b"hello\nhello\nh\n", b"HELLO\nHELLO\nH\n"))
        self.assertEqual(payloads.message(3, 9), payloads.message(1, 1))

    def test_streamPatternWraps(self) -> None:
        """
        A stream's chunks, read piece by piece across the block's end, are
        the block from the connection's own start, and its expected bytes
        their uppercase.
        """
        block = randomBlock(1, 1024)
        pattern = StreamPattern(1, 2, block)
        out = b""
        while len(out) < 3000:
            out += pattern.chunk(len(out), 500)
        start = pattern.start
        self.assertEqual(out[:3000], ((block * 4)[start : start + 3000]))
        self.assertEqual(pattern.expected(100, 50), asciiUpper(pattern.chunk(100, 50)))


class PlainPayloadTests(SynchronousTestCase):
    """
    With C{plain}, the reply due is the message itself, unchanged: the same
    bytes object, no copy made.
    """

    def test_repliesAreTheMessages(self) -> None:
        """
        For text and random payloads, short and long, one message or many,
        the reply due is what is sent (the same object), and what is sent
        is what the uppercase run sends.
        """
        for kind, size in (("text", 10), ("random", 5), ("random", 100)):
            plain = Payloads(kind, size, seed=3, plain=True)
            upper = Payloads(kind, size, seed=3)
            for sent, expected in (plain.message(2, 7), plain.messages(2, 7, 5)):
                self.assertIs(sent, expected, (kind, size))
            self.assertEqual(plain.message(2, 7)[0], upper.message(2, 7)[0])
            self.assertEqual(plain.messages(2, 7, 5)[0], upper.messages(2, 7, 5)[0])

    def test_streamExpectsItself(self) -> None:
        """
        A plain stream's reply due is the stream itself.
        """
        pattern = StreamPattern(1, 3, plain=True)
        self.assertEqual(pattern.expected(100, 5000), pattern.chunk(100, 5000))
        self.assertNotEqual(StreamPattern(1, 3).expected(100, 5000), pattern.chunk(100, 5000))
