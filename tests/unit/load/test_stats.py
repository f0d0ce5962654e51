"""
Specification of L{uppercase.load.stats}: what a load run counts, and how a mismatch reads.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from uppercase.client._verifier import Mismatch
from uppercase.load.stats import describeMismatch


class MismatchTextTests(SynchronousTestCase):
    """
    A mismatch reads as one line with a short hex excerpt.
    """

    def test_describes(self) -> None:
        """
        The line names the connection, message, byte, stream offset, the
        two bytes, and excerpts of both sides.
        """
        mismatch = Mismatch.around(
            connection=3,
            message=17,
            offset=1029,
            messageOffset=5,
            expected=b"ABCDEFGHIJ",
            received=b"ABCDEfGHIJ",
            index=5,
        )
        self.assertEqual(
            describeMismatch(mismatch),
            "connection 3, message 17, byte 5 (stream offset 1029): expected 46, received 66; "
            'bytes 1-9: expected 42 43 44 45 46 47 48 49 4a "BCDEFGHIJ", '
            'received 42 43 44 45 66 47 48 49 4a "BCDEfGHIJ"',
        )

    def test_boundedExcerpt(self) -> None:
        """
        However long the message, the excerpts are 16 bytes at most.
        """
        mismatch = Mismatch.around(
            connection=1,
            message=1,
            offset=5000,
            messageOffset=5000,
            expected=b"A" * 10000,
            received=b"A" * 5000 + b"a" + b"A" * 4999,
            index=5000,
        )
        self.assertEqual((len(mismatch.expected), len(mismatch.received)), (16, 16))
        self.assertLess(len(describeMismatch(mismatch)), 300)
