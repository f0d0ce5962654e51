"""
Tests for L{uppercase.load.startat}: C{--start-at} as typed, and the wait
on a fake clock.
"""

from __future__ import annotations

from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from uppercase.load.startat import TooLate, formatTime, parseStartAt, waitUntil

AT = 1796581800.0
"""2026-12-06T18:30:00Z."""


def _ignore(line: str) -> None:
    pass


class ParseTests(SynchronousTestCase):
    """
    Unix seconds or RFC 3339.
    """

    def test_unixSeconds(self) -> None:
        """
        A number is Unix seconds.
        """
        self.assertEqual(parseStartAt("1796581800"), AT)
        self.assertEqual(parseStartAt(" 1796581800.25 "), AT + 0.25)

    def test_rfc3339(self) -> None:
        """
        An RFC 3339 time with C{Z} or an offset, with or without a
        fraction, names the same moment.
        """
        self.assertEqual(parseStartAt("2026-12-06T18:30:00Z"), AT)
        self.assertEqual(parseStartAt("2026-12-06t18:30:00z"), AT)
        self.assertEqual(parseStartAt("2026-12-06T19:30:00+01:00"), AT)
        self.assertEqual(parseStartAt("2026-12-06T13:30:00.5-05:00"), AT + 0.5)
        self.assertEqual(parseStartAt("2026-12-06 18:30:00.123456789Z"), AT + 0.123456789)

    def test_roundTrip(self) -> None:
        """
        L{formatTime} writes what L{parseStartAt} reads.
        """
        self.assertEqual(formatTime(AT), "2026-12-06T18:30:00Z")
        self.assertEqual(parseStartAt(formatTime(AT + 0.5)), AT + 0.5)

    def test_bad(self) -> None:
        """
        Anything else (no offset, a bad date, a negative or infinite
        number) is one line naming the option and an example.
        """
        for text in ("2026-12-06T18:30:00", "2026-13-06T18:30:00Z", "-5", "inf", "soon", ""):
            with self.assertRaises(ValueError) as caught:
                parseStartAt(text)
            self.assertEqual(
                str(caught.exception),
                "--start-at must be Unix seconds or an RFC 3339 time such as "
                f"2026-12-06T18:30:00Z, not {text!r}",
            )


class WaitTests(SynchronousTestCase):
    """
    L{waitUntil} waits on the clock it is given, and says how long is left.
    """

    def test_waits(self) -> None:
        """
        It fires at the time, not before, and says how long is left at
        once, each minute, at 10 s and each second of the last ten.
        """
        clock = Clock()
        clock.advance(AT - 125)
        said: list[str] = []
        waited = waitUntil(clock, AT, said.append)
        clock.advance(124.9)
        self.assertNoResult(waited)
        clock.advance(0.1)
        self.assertIsNone(self.successResultOf(waited))
        self.assertEqual(
            said,
            [f"starting in {n} s" for n in (125, 120, 60, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1)],
        )
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_lateWithinGrace(self) -> None:
        """
        Up to the grace after the time, it fires at once.
        """
        clock = Clock()
        clock.advance(AT + 0.9)
        self.assertIsNone(self.successResultOf(waitUntil(clock, AT, _ignore, grace=1.0)))

    def test_tooLate(self) -> None:
        """
        Later than that, it fails with L{TooLate}, saying by how much.
        """
        clock = Clock()
        clock.advance(AT + 3.25)
        failure = self.failureResultOf(waitUntil(clock, AT, _ignore, grace=1.0), TooLate)
        self.assertEqual(
            str(failure.value),
            "too late to start on time: came up 3.2 s after --start-at "
            "(a shard may start at most 1 s late)",
        )

    def test_cancel(self) -> None:
        """
        Cancelling the wait leaves no timer behind.
        """
        clock = Clock()
        clock.advance(AT - 30)
        waited = waitUntil(clock, AT, _ignore)
        waited.cancel()
        self.failureResultOf(waited, CancelledError)
        self.assertEqual(clock.getDelayedCalls(), [])
