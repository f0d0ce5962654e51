"""Fitting the connection limit to the descriptor limit."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from uppercase.server._fdlimit import FD_HEADROOM, connectionCapacity

INFINITY = -1


class FakeLimits:
    """
    An C{RLIMIT_NOFILE} that can be read and set, within its hard limit.
    """

    def __init__(self, soft: int, hard: int) -> None:
        self.soft, self.hard = soft, hard

    def get(self) -> tuple[int, int]:
        return self.soft, self.hard

    def set(self, limits: tuple[int, int]) -> None:
        soft, hard = limits
        if self.hard != INFINITY and soft > self.hard:
            raise ValueError("not allowed to raise maximum limit")
        self.soft = soft

    def capacity(self, wanted: int) -> tuple[int, int | None]:
        return connectionCapacity(wanted, (self.get, self.set, INFINITY))


class CapacityTests(SynchronousTestCase):
    """
    The server refuses connections before it could run out of descriptors.
    """

    def test_softRaisedWhenNeeded(self) -> None:
        """
        A soft limit too low for the wanted connections is raised (within
        the hard limit) and the wanted limit kept.
        """
        limits = FakeLimits(1024, 1048576)
        self.assertEqual(limits.capacity(10000), (10000, 10000 + FD_HEADROOM))
        self.assertEqual(limits.soft, 10000 + FD_HEADROOM)

    def test_cappedByHardLimit(self) -> None:
        """
        Under C{ulimit -n 48} the limit becomes what fits, leaving headroom.
        """
        limits = FakeLimits(48, 48)
        self.assertEqual(limits.capacity(10000), (48 - FD_HEADROOM, 48))

    def test_enoughAlready(self) -> None:
        """
        A soft limit with room to spare is left alone.
        """
        limits = FakeLimits(65536, 65536)
        self.assertEqual(limits.capacity(100), (100, 65536))
        self.assertEqual(limits.soft, 65536)

    def test_unlimitedStillFits(self) -> None:
        """
        "Unlimited" (0) still stops short of the descriptor limit, after
        raising the soft limit to the hard one.
        """
        limits = FakeLimits(1024, 4096)
        self.assertEqual(limits.capacity(0), (4096 - FD_HEADROOM, 4096))

    def test_tinyLimit(self) -> None:
        """
        Even a limit below the headroom allows one connection.
        """
        self.assertEqual(FakeLimits(10, 10).capacity(5), (1, 10))
