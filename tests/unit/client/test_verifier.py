"""
The reply verifier alone: fed bytes in any chunking, it completes every
message due, and locates a wrong byte exactly, once per message.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from uppercase.client._verifier import EXCERPT_BYTES, Mismatch, ReplyVerifier, echoHint


def cuts(data: bytes, points: list[int]) -> list[bytes]:
    """
    C{data} cut at C{points} (any order, any values; taken modulo its
    length), in order.
    """
    edges = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in zip(edges, edges[1:])]


streams = st.integers(min_value=1, max_value=40).flatmap(
    lambda unit: st.tuples(
        st.just(unit),
        st.binary(min_size=unit, max_size=unit * 12).map(lambda b: b[: len(b) - len(b) % unit]),
    )
)


def feedAll(verifier: ReplyVerifier, pieces: list[bytes]) -> tuple[int, list[int], list[Mismatch]]:
    done = 0
    failed: list[int] = []
    found: list[Mismatch] = []
    for piece in pieces:
        d, f, m = verifier.feed(piece)
        done += d
        failed += f
        found += m
    return done, failed, found


class ReplyVerifierTests(SynchronousTestCase):
    """
    L{ReplyVerifier} checks a stream against what is due.
    """

    @given(streams, st.lists(st.integers(min_value=0)), st.lists(st.integers(min_value=0)))
    def test_rightStreamAnyChunking(
        self, stream: tuple[int, bytes], expectCuts: list[int], readCuts: list[int]
    ) -> None:
        """
        However what is due is announced and however the reply is cut,
        a right reply completes every message with no mismatch.
        """
        unit, data = stream
        verifier = ReplyVerifier(unit)
        for piece in cuts(data, expectCuts):
            verifier.expect(piece)
        done, failed, found = feedAll(verifier, cuts(data, readCuts))
        self.assertEqual((done, failed, found), (len(data) // unit, [], []))
        self.assertEqual(
            (verifier.completed, verifier.received, verifier.due), (done, len(data), 0)
        )

    @given(
        streams,
        st.integers(min_value=0),
        st.integers(min_value=1, max_value=255),
        st.lists(st.integers(min_value=0)),
    )
    def test_oneWrongByteLocated(
        self, stream: tuple[int, bytes], where: int, flip: int, readCuts: list[int]
    ) -> None:
        """
        One wrong byte at any offset, read in any chunking, is one mismatch
        at exactly its offset and message, and fails exactly that message.
        """
        unit, data = stream
        offset = where % len(data)
        wrong = bytearray(data)
        wrong[offset] ^= flip
        verifier = ReplyVerifier(unit, connection=7)
        verifier.expect(data)
        done, failed, found = feedAll(verifier, cuts(bytes(wrong), readCuts))
        self.assertEqual(done, len(data) // unit)
        self.assertEqual(failed, [offset // unit + 1])
        self.assertEqual(len(found), 1)
        mismatch = found[0]
        self.assertEqual(
            (mismatch.connection, mismatch.message, mismatch.offset, mismatch.messageOffset),
            (7, offset // unit + 1, offset, offset % unit),
        )
        index = mismatch.messageOffset - mismatch.excerptStart
        self.assertEqual(mismatch.expected[index], data[offset])
        self.assertEqual(mismatch.received[index], wrong[offset])
        start = offset - index
        self.assertEqual(mismatch.expected, data[start : start + len(mismatch.expected)])
        self.assertLessEqual(len(mismatch.expected), EXCERPT_BYTES)
        self.assertGreaterEqual(start, offset // unit * unit)  # within its message

    @given(st.integers(min_value=1, max_value=10), st.integers(min_value=2, max_value=8))
    def test_oneReportPerMessage(self, unit: int, count: int) -> None:
        """
        A message with many wrong bytes is reported once; every message
        with one is failed.
        """
        verifier = ReplyVerifier(unit)
        verifier.expect(b"a" * unit * count)
        done, failed, found = verifier.feed(b"b" * unit * count)
        self.assertEqual(done, count)
        self.assertEqual(failed, tuple(range(1, count + 1)))
        self.assertEqual([m.message for m in found], list(range(1, count + 1)))
        self.assertEqual([m.messageOffset for m in found], [0] * count)

    @given(streams, st.lists(st.integers(min_value=0)), st.integers(min_value=0))
    def test_interleavedExpectAndFeed(
        self, stream: tuple[int, bytes], readCuts: list[int], ahead: int
    ) -> None:
        """
        As the load mode uses it (what is due announced a message batch at
        a time, the replies read in between, in any cuts), the verifier's
        counts stay exact after every read: C{received}, C{due} and
        C{completed} match what was fed and announced.
        """
        unit, data = stream
        verifier = ReplyVerifier(unit)
        announced = 0
        fed = 0
        completed = 0
        for piece in cuts(data, readCuts):
            end = fed + len(piece)
            while announced < end:
                step = min(len(data) - announced, unit * (1 + ahead % 3))
                verifier.expect(data[announced : announced + step])
                announced += step
            done, failed, found = verifier.feed(piece)
            fed = end
            completed += done
            self.assertEqual((failed, found), ((), ()))
            self.assertEqual(
                (verifier.received, verifier.due, verifier.completed, completed),
                (fed, announced - fed, fed // unit, fed // unit),
            )

    def test_failedOnlyWhenComplete(self) -> None:
        """
        A message is named failed by the read that completes it, not by the
        one that brings its wrong byte.
        """
        verifier = ReplyVerifier(4)
        verifier.expect(b"ABCDEFGH")
        done, failed, found = verifier.feed(b"AxC")
        self.assertEqual((done, failed, [m.offset for m in found]), (0, (), [1]))
        done, failed, found = verifier.feed(b"DEF")
        self.assertEqual((done, failed, found), (1, (1,), ()))
        self.assertEqual(verifier.feed(b"GH"), (1, (), ()))

    def test_unexpectedBytes(self) -> None:
        """
        Bytes beyond what is due are one mismatch with nothing expected, after
        those found in the due part; they are not part of the stream.
        """
        verifier = ReplyVerifier(3)
        verifier.expect(b"ABC")
        done, failed, found = verifier.feed(b"AXCextra")
        self.assertEqual((done, failed), (1, (1,)))
        self.assertEqual([(m.offset, m.unexpected) for m in found], [(1, False), (3, True)])
        self.assertEqual(found[1].received, b"extra")
        self.assertIn('while no reply was due: 65 78 74 72 61 "extra"', str(found[1]))
        self.assertEqual(verifier.received, 3)
        verifier.expect(b"DEF")
        self.assertEqual(verifier.feed(b"DEF"), (1, (), ()))

    def test_nothingDue(self) -> None:
        """
        Bytes when nothing was ever due: one mismatch, at offset 0, message 1.
        """
        _, _, found = ReplyVerifier(5).feed(b"hi")
        self.assertEqual((found[0].message, found[0].offset, found[0].received), (1, 0, b"hi"))

    def test_forget(self) -> None:
        """
        After giving up on what is due, the stream goes on at the next
        message's start, and the count says how many messages were due.
        """
        verifier = ReplyVerifier(4)
        verifier.expect(b"ABCDEFGHIJKL")
        verifier.feed(b"ABCDE")
        self.assertEqual(verifier.forget(), 2)
        self.assertEqual((verifier.received, verifier.due, verifier.completed), (12, 0, 3))
        verifier.expect(b"MNOP")
        self.assertEqual(verifier.feed(b"MNxP")[0:2], (1, (4,)))

    def test_mismatchWords(self) -> None:
        """
        A mismatch says where, and shows both sides' bytes in hex.
        """
        verifier = ReplyVerifier(10, connection=2)
        verifier.expect(b"0123456789")
        _, _, (mismatch,) = verifier.feed(b"01234x6789")
        self.assertEqual(
            str(mismatch),
            "connection 2, message 1, byte 5 (stream offset 5): expected 35, received 78; "
            'bytes 1-9: expected 31 32 33 34 35 36 37 38 39 "123456789", '
            'received 31 32 33 34 78 36 37 38 39 "1234x6789"',
        )

    def test_unitAtLeastOne(self) -> None:
        """
        A message of no bytes is refused.
        """
        self.assertRaises(ValueError, ReplyVerifier, 0)


class EchoHintTests(SynchronousTestCase):
    """
    L{echoHint} says when a wrong reply looks like the other echo's.
    """

    def mismatch(self, expected: bytes, received: bytes) -> Mismatch:
        verifier = ReplyVerifier(len(expected))
        verifier.expect(expected)
        _, _, (found,) = verifier.feed(received)
        return found

    def test_unchangedWhereUppercaseDue(self) -> None:
        """
        Bytes back unchanged where their uppercase was due: a plain echo.
        """
        found = self.mismatch(b"HELLO \xe9\n", b"hello \xe9\n")
        self.assertEqual(
            echoHint(found, plain=False), " (unchanged: is it a plain RFC 862 echo? try --plain)"
        )
        self.assertEqual(echoHint(found, plain=True), "")

    def test_uppercasedWhereUnchangedDue(self) -> None:
        """
        Bytes back uppercased where they were due unchanged: the uppercase
        echo.
        """
        found = self.mismatch(b"hello\n", b"HELLO\n")
        self.assertEqual(
            echoHint(found, plain=True),
            " (uppercased: is it the uppercase echo? it expects no --plain)",
        )
        self.assertEqual(echoHint(found, plain=False), "")

    def test_otherwiseNothing(self) -> None:
        """
        Other wrong bytes, and bytes when none were due, get no hint.
        """
        found = self.mismatch(b"hello\n", b"hellx\n")
        self.assertEqual((echoHint(found, True), echoHint(found, False)), ("", ""))
        verifier = ReplyVerifier(4)
        _, _, (extra,) = verifier.feed(b"abcd")
        self.assertEqual((echoHint(extra, True), echoHint(extra, False)), ("", ""))
