"""
Tests for L{uppercase.client._datagram}: the header, and the tracker's
counts, against a reference model for any interleaving of drops,
duplicates, reordering, corruption, lateness and foreign datagrams.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from uppercase.client._datagram import (
    ANSWER,
    CORRUPTED,
    DUPLICATE,
    FOREIGN,
    HEADER_SIZE,
    LATE,
    DatagramCounts,
    DatagramTracker,
    encode,
    header,
    parseHeader,
)

PAYLOAD = b"hello\n"
REPLY = b"HELLO\n"


def tracker(timeout: float = 10.0, window: int = 1 << 16) -> DatagramTracker:
    return DatagramTracker(3, timeout, lambda sequence: REPLY, window=window)


class HeaderTests(SynchronousTestCase):
    def test_uppercaseLeavesItAlone(self) -> None:
        """
        The header is digits, upper-case letters and spaces: uppercasing
        it changes nothing, and it is L{HEADER_SIZE} bytes.
        """
        h = header(999999, 999999999999)
        self.assertEqual(h.upper(), h)
        self.assertEqual(len(h), HEADER_SIZE)
        self.assertEqual(len(header(1, 1)), HEADER_SIZE)

    def test_roundTrip(self) -> None:
        """
        L{parseHeader} gives back the socket and sequence numbers of
        L{encode}'s datagram, whatever the payload.
        """
        self.assertEqual(parseHeader(encode(7, 42, b"\x00\xffany")), (7, 42))
        self.assertEqual(parseHeader(encode(7, 42, b"")), (7, 42))

    def test_notAHeader(self) -> None:
        """
        Anything but an intact header is L{None}: too short, another magic,
        a letter among the digits, a missing separator.
        """
        good = encode(1, 2, b"x")
        for bad in (
            b"",
            good[: HEADER_SIZE - 1],
            b"XC1" + good[3:],
            good[:7] + b"A" + good[8:],
            good[:20] + b"-" + good[21:],
            good[:25] + b"x" + good[26:],
            good[:11] + b"  " + good[13:],
            good[:6] + "٣".encode() + good[8:],
        ):
            self.assertIsNone(parseHeader(bad), bad)


class TrackerTests(SynchronousTestCase):
    def test_answer(self) -> None:
        """
        A right reply in time is verified, with the time it was sent.
        """
        t = tracker()
        sequence = t.send(5.0)
        arrival = t.receive(encode(3, sequence, REPLY), 5.5)
        self.assertEqual((arrival.kind, arrival.sequence, arrival.stamp), (ANSWER, 1, 5.0))
        self.assertEqual(t.counts, DatagramCounts(sent=1, received=1, verified=1))
        self.assertEqual(t.inFlight, 0)

    def test_stamp(self) -> None:
        """
        The latency is measured from the stamp given (an open loop's
        scheduled time); the timeout from when it was sent.
        """
        t = tracker(timeout=1.0)
        t.send(10.0, stamp=9.0)
        self.assertEqual(t.nextDeadline, 11.0)
        self.assertEqual(t.receive(encode(3, 1, REPLY), 10.9).stamp, 9.0)

    def test_corrupted(self) -> None:
        """
        A reply whose payload differs is corrupted, and answered (not
        lost).
        """
        t = tracker()
        t.send(0.0)
        arrival = t.receive(encode(3, 1, b"HELLO!"), 1.0)
        self.assertEqual((arrival.kind, arrival.payload), (CORRUPTED, b"HELLO!"))
        self.assertEqual(t.counts, DatagramCounts(sent=1, received=1, corrupted=1))

    def test_lostThenLate(self) -> None:
        """
        With no reply by its timeout a datagram is lost; a reply after that
        is late, and it stays lost; one more is a duplicate.
        """
        t = tracker(timeout=2.0)
        t.send(0.0)
        self.assertEqual(t.expire(1.999), 0)
        self.assertEqual(t.expire(2.0), 1)
        self.assertEqual(t.receive(encode(3, 1, REPLY), 3.0).kind, LATE)
        self.assertEqual(t.receive(encode(3, 1, REPLY), 3.0).kind, DUPLICATE)
        self.assertEqual(t.counts, DatagramCounts(sent=1, received=2, lost=1, late=1, duplicated=1))

    def test_lateBeforeExpire(self) -> None:
        """
        A reply at or after its timeout is late and lost even if nothing
        expired it yet; a later L{DatagramTracker.expire} counts it no
        more.
        """
        t = tracker(timeout=2.0)
        t.send(0.0)
        self.assertEqual(t.receive(encode(3, 1, REPLY), 2.0).kind, LATE)
        self.assertEqual(t.expire(5.0), 0)
        self.assertEqual(t.counts, DatagramCounts(sent=1, received=1, lost=1, late=1))

    def test_duplicate(self) -> None:
        """
        A second reply for the same datagram is a duplicate, whatever it
        holds.
        """
        t = tracker()
        t.send(0.0)
        t.receive(encode(3, 1, REPLY), 0.1)
        self.assertEqual(t.receive(encode(3, 1, b"garbage"), 0.2).kind, DUPLICATE)
        self.assertEqual(t.counts, DatagramCounts(sent=1, received=2, verified=1, duplicated=1))

    def test_reordered(self) -> None:
        """
        A first reply that arrives after a later datagram's is reordered
        (and still verified); the later one is not.
        """
        t = tracker()
        t.send(0.0)
        t.send(0.0)
        t.send(0.0)
        t.receive(encode(3, 2, REPLY), 0.1)
        t.receive(encode(3, 1, REPLY), 0.1)
        t.receive(encode(3, 3, REPLY), 0.1)
        self.assertEqual(t.counts, DatagramCounts(sent=3, received=3, verified=3, reordered=1))

    def test_foreign(self) -> None:
        """
        No header, another socket's header, or a sequence number never
        sent: foreign, and nothing in flight is answered by it.
        """
        t = tracker()
        t.send(0.0)
        for datagram in (b"HELLO\n", encode(4, 1, REPLY), encode(3, 2, REPLY)):
            self.assertEqual(t.receive(datagram, 0.1).kind, FOREIGN)
        self.assertEqual(t.counts, DatagramCounts(sent=1, received=3, foreign=3))
        self.assertEqual(t.inFlight, 1)

    def test_window(self) -> None:
        """
        A reply to a datagram more than the window behind the latest is
        foreign: what is remembered of answered datagrams is bounded.
        """
        t = tracker(window=4)
        for _ in range(6):
            t.receive(encode(3, t.send(0.0), REPLY), 0.0)
        self.assertEqual(t.receive(encode(3, 1, REPLY), 0.0).kind, FOREIGN)
        self.assertEqual(t.receive(encode(3, 2, REPLY), 0.0).kind, FOREIGN)
        self.assertEqual(t.receive(encode(3, 3, REPLY), 0.0).kind, DUPLICATE)
        self.assertLessEqual(len(t._answered), 4)

    def test_expireAll(self) -> None:
        """
        L{DatagramTracker.expireAll} counts what is in flight as lost.
        """
        t = tracker()
        t.send(0.0)
        t.send(0.0)
        t.receive(encode(3, 2, REPLY), 0.1)
        self.assertEqual(t.expireAll(), 1)
        self.assertEqual(t.counts.lost, 1)
        self.assertIsNone(t.nextDeadline)

    def test_lossPercent(self) -> None:
        """
        Loss is a percentage of the datagrams whose fate is known; L{None}
        before any is.
        """
        self.assertIsNone(DatagramCounts(sent=3).lossPercent())
        self.assertEqual(DatagramCounts(sent=4, verified=2, corrupted=1, lost=1).lossPercent(), 25)


Copy = Tuple[int, bool]  # (delay, corrupted)


def reference(
    timeout: int, copies: List[List[Copy]], foreign: int, arrivals: List[Tuple[int, int, int]]
) -> Dict[str, int]:
    """
    The counts, straight from their definitions (docs/load-testing.md),
    given every arrival (time, sequence or 0 for foreign, copy index) in
    the order fed.
    """
    counts = dict.fromkeys(DatagramCounts().asDict(), 0)
    counts["sent"] = len(copies)
    counts["received"] = sum(len(c) for c in copies) + foreign
    counts["foreign"] = foreign
    seen: set[int] = set()
    highest = 0
    for time, sequence, index in arrivals:
        if not sequence:
            continue
        if sequence in seen:
            counts["duplicated"] += 1
            continue
        seen.add(sequence)
        sentAt = sequence - 1
        if time >= sentAt + timeout:
            counts["late"] += 1
            continue
        if sequence < highest:
            counts["reordered"] += 1
        highest = max(highest, sequence)
        if copies[sequence - 1][index][1]:
            counts["corrupted"] += 1
        else:
            counts["verified"] += 1
    counts["lost"] = counts["sent"] - counts["verified"] - counts["corrupted"]
    return counts


@st.composite
def scenarios(draw: st.DrawFn) -> Tuple[int, List[List[Copy]], List[int], List[int]]:
    timeout = draw(st.integers(1, 4))
    n = draw(st.integers(1, 12))
    copy = st.tuples(st.integers(0, 3 * timeout), st.booleans())
    copies = draw(st.lists(st.lists(copy, max_size=3), min_size=n, max_size=n))
    foreign = draw(st.lists(st.integers(0, n + 3 * timeout), max_size=4))
    expiries = draw(st.lists(st.integers(0, n + 3 * timeout), max_size=6))
    return timeout, copies, foreign, expiries


class TrackerModelTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(scenarios(), st.randoms(use_true_random=False))
    def test_matchesReference(
        self,
        scenario: Tuple[int, List[List[Copy]], List[int], List[int]],
        random: object,
    ) -> None:
        """
        Datagram I{i} sent at time I{i - 1}, each reply of it (none: a drop;
        several: duplicates) after any delay, right or corrupted, arriving
        in any order with foreign datagrams and expiries among them: the
        tracker's counts are the reference model's, and they add up.
        """
        timeout, copies, foreign, expiries = scenario
        events: List[Tuple[int, int, int, object]] = []  # (time, kind, tiebreak, what)
        for sequence, replies in enumerate(copies, 1):
            events.append((sequence - 1, 0, 0, sequence))
            for index, (delay, _) in enumerate(replies):
                events.append((sequence - 1 + delay, 2, random.random(), (sequence, index)))  # type: ignore[attr-defined]
        for time in foreign:
            events.append((time, 2, random.random(), (0, 0)))  # type: ignore[attr-defined]
        for time in expiries:
            events.append((time, 1, random.random(), None))  # type: ignore[attr-defined]
        events.sort(key=lambda e: (e[0], e[1], e[2]))
        t = tracker(timeout=timeout)
        arrivals = []
        for time, kind, _, what in events:
            if kind == 0:
                self.assertEqual(t.send(float(time)), what)
            elif kind == 1:
                t.expire(float(time))
            else:
                sequence, index = what  # type: ignore[misc]
                arrivals.append((time, sequence, index))
                if sequence:
                    corrupt = copies[sequence - 1][index][1]
                    datagram = encode(3, sequence, b"WRONG\n" if corrupt else REPLY)
                else:
                    datagram = b"not ours"
                t.receive(datagram, float(time))
        t.expireAll()
        expected = reference(timeout, copies, len(foreign), arrivals)
        self.assertEqual(t.counts.asDict(), expected)
        c = t.counts
        self.assertEqual(c.received, c.verified + c.corrupted + c.late + c.duplicated + c.foreign)
        self.assertEqual(c.sent, c.verified + c.corrupted + c.lost)
        self.assertLessEqual(c.late, c.lost)
        self.assertLessEqual(c.reordered, c.verified + c.corrupted)
