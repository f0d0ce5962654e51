"""
C{--start-at TIME}: shards that start together without a coordinator.  Each
waits on its reactor's clock until TIME (Unix seconds, or an RFC 3339 time
such as C{2026-12-06T18:30:00Z}), saying how long is left, then starts; one
that comes up more than L{START_GRACE} seconds after TIME is too late to
start on time and fails (L{TooLate}) instead of running a shifted shard
that would blur the merged result.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from uppercase._settings import decimalNumber

__all__ = ["START_GRACE", "TooLate", "formatTime", "parseStartAt", "waitUntil"]

START_GRACE = 1.0
"""Seconds after C{--start-at} a shard may still start."""

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
)


def parseStartAt(text: str) -> float:
    """
    The Unix time C{text} names: a number of seconds since the epoch
    (C{1796581800}, C{1796581800.5}) or an RFC 3339 time with its offset
    (C{2026-12-06T18:30:00Z}, C{2026-12-06T19:30:00.25+01:00}).

    @raise ValueError: with the line to show, naming the option.
    """
    stripped = str(text).strip()
    wrong = (
        f"--start-at must be Unix seconds or an RFC 3339 time such as "
        f"2026-12-06T18:30:00Z, not {text!r}"
    )
    match = _RFC3339.fullmatch(stripped)
    if match is None:
        try:
            seconds = decimalNumber(stripped)
        except ValueError:
            raise ValueError(wrong) from None
        if not math.isfinite(seconds) or seconds <= 0:
            raise ValueError(wrong)
        return seconds
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction = float(match.group(7) or 0)
    zone = match.group(8)
    if zone in ("Z", "z"):
        offset = timedelta(0)
    else:
        sign = -1 if zone[0] == "-" else 1
        offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    try:
        # A leap second (:60) is the second after :59.
        moment = datetime(year, month, day, hour, minute, min(second, 59), tzinfo=timezone(offset))
    except ValueError:
        raise ValueError(wrong) from None
    return moment.timestamp() + (second == 60) + fraction


def formatTime(seconds: float) -> str:
    """
    Unix time C{seconds} in RFC 3339, UTC (C{2026-12-06T18:30:00Z}; with
    milliseconds when it has a fraction).
    """
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


class TooLate(Exception):
    """
    The shard came up after C{--start-at} and its grace.

    @ivar late: seconds after C{--start-at}.
    @ivar grace: the most it could have been late and still started.
    """

    def __init__(self, late: float, grace: float = START_GRACE) -> None:
        super().__init__(late)
        self.late = late
        self.grace = grace

    def __str__(self) -> str:
        return (
            f"too late to start on time: came up {self.late:.1f} s after --start-at "
            f"(a shard may start at most {self.grace:g} s late)"
        )


def _nextMark(remaining: float) -> int:
    """
    The next whole number of seconds left at which to say so: each minute
    down to a minute, then at 10 s, then each second.
    """
    below = math.ceil(remaining) - 1
    if below > 60:
        return (below // 60) * 60
    if below > 10:
        return 10
    return below


def waitUntil(
    clock: IReactorTime,
    at: float,
    say: Callable[[str], None],
    grace: float = START_GRACE,
) -> Deferred[None]:
    """
    Wait on C{clock} until Unix time C{at}, telling C{say} how long is left
    (C{starting in 12 s}) at once and at L{_nextMark}s.

    @return: fires once C{at} is reached, at once if it has passed by
        C{grace} seconds at most; fails with L{TooLate} if it passed by
        more.  Cancelling it stops the wait (a C{CancelledError}).
    """
    calls: list[Any] = []

    def cancel(d: Deferred[None]) -> None:
        for call in calls:
            if call.active():
                call.cancel()

    waited: Deferred[None] = Deferred(cancel)
    now = clock.seconds()
    if now > at + grace:
        waited.errback(TooLate(now - at, grace))
        return waited
    if now >= at:
        waited.callback(None)
        return waited

    def tell(left: int) -> None:
        say(f"starting in {left} s")
        mark = _nextMark(left)
        if mark > 0:
            calls.append(clock.callLater(max(at - mark - clock.seconds(), 0), tell, mark))

    def start() -> None:
        waited.callback(None)

    tell(math.ceil(at - now))
    calls.append(clock.callLater(at - now, start))
    return waited
