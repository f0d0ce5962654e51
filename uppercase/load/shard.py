"""
Sharded load runs: shard I (from 0) of N runs its share of the run's
C{--rate}, C{--connections} and C{--count}, with a payload seed of its own,
and says in its summary which run it belongs to, so that C{merge} can check
that the shards it is given are those of one run, each once.

Shares add up exactly: a whole number is split with the remainder going one
unit each to the first shards (10 over 3: 4, 3, 3); a rate is split the same
way in thousandths of a message per second (C{--rate 1000} over 3: 333.334,
333.333, 333.333), so that N shards send the rate asked, to the thousandth.
Pure functions: no clock, no I/O.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from typing import Any, Mapping

from uppercase.client._settings import ClientSettings
from uppercase.load.result import describeSettings

__all__ = [
    "INDEX_VARIABLE",
    "RATE_UNITS",
    "THRESHOLDS",
    "Shard",
    "ShardError",
    "parseShard",
    "runIdentity",
    "share",
    "shardRate",
    "shardSeed",
    "splitRun",
]

INDEX_VARIABLE = "JOB_COMPLETION_INDEX"
"""Where C{--shard auto/N} reads I: what a Kubernetes Indexed Job sets."""

RATE_UNITS = 1000
"""A rate is split in thousandths of a message per second."""

THRESHOLDS = {
    "max-p50": "maxP50",
    "max-p99": "maxP99",
    "max-p999": "maxP999",
    "min-rate": "minRate",
    "min-mbps": "minMbps",
    "max-loss": "maxLoss",
}
"""The thresholds (option: setting), which apply to the whole run: a shard
of several checks none itself, but names them for C{merge} to check."""

NO_LOSS_LIMIT = 100.0
"""The C{--max-loss} of a shard of several: no loss can be over it (0 would
fail on any loss, since C{--max-loss} 0 is a limit, not "off")."""


class ShardError(ValueError):
    """
    A shard cannot be run as asked; the message says why, in one line.
    """


def share(total: int, index: int, count: int) -> int:
    """
    Shard C{index}'s share of C{total} whole units over C{count} shards: the
    shares differ by one at most and add up to C{total}.
    """
    whole, remainder = divmod(total, count)
    return whole + (1 if index < remainder else 0)


def shardRate(rate: float, index: int, count: int) -> float:
    """
    Shard C{index}'s share of C{rate} messages per second, split in
    thousandths (L{RATE_UNITS}) as L{share} splits whole numbers.
    """
    return share(round(rate * RATE_UNITS), index, count) / RATE_UNITS


def shardSeed(seed: int, index: int) -> int:
    """
    The payload seed of shard C{index} of a run with C{--seed seed}: the
    first 8 bytes, big-endian, of the SHA-256 of C{"uppercase shard
    SEED INDEX"} (ASCII, decimal).  Stable across versions: a shard's
    messages can be made again from its seed and index alone.
    """
    digest = hashlib.sha256(f"uppercase shard {seed} {index}".encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big")


def runIdentity(settings: ClientSettings, count: int, startAt: float | None) -> str:
    """
    What names a run whose shards are to be merged: 16 hex digits hashed
    from the settings every shard must share (the endpoint, mode, totals,
    seed, payload, sizes and times, the shard count and C{--start-at},
    whether replies are expected unchanged (C{--plain}) and C{--fail-fast}).
    Shards given different settings get different identities, and C{merge}
    refuses to add them up.
    """
    agreed = (
        settings.connect,
        settings.mode,
        settings.connections,
        repr(round(settings.rate * RATE_UNITS)),
        settings.limit,
        repr(settings.duration),
        repr(settings.warmup),
        settings.pipeline,
        settings.size,
        settings.payload,
        settings.seed,
        settings.message.hex(),
        count,
        repr(startAt),
        settings.plain,
        settings.failFast,
    )
    text = "\n".join(str(item) for item in agreed)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def parseShard(text: str, environ: Mapping[str, str] = os.environ) -> tuple[int, int]:
    """
    C{I/N} as typed after C{--shard} (C{auto/N}: I from
    L{INDEX_VARIABLE}), as C{(I, N)}.

    @raise ShardError: naming the option or the variable.
    """
    index, slash, count = str(text).strip().partition("/")
    if not slash or not count.strip().isdigit() or not count.strip().isascii():
        raise ShardError(f"--shard must be I/N or auto/N (I from 0), not {text!r}")
    n = int(count)
    if n < 1:
        raise ShardError(f"--shard {text}: N must be at least 1")
    if index.strip().lower() == "auto":
        raw = environ.get(INDEX_VARIABLE)
        if raw is None:
            raise ShardError(f"--shard {text} needs {INDEX_VARIABLE}, which is not set")
        where = f"{INDEX_VARIABLE}={raw!r}"
    else:
        raw = index
        where = f"--shard {text}"
    stripped = raw.strip()
    if not (stripped.isdigit() and stripped.isascii()):
        raise ShardError(f"{where} is not a shard index (a whole number from 0)")
    i = int(stripped)
    if i >= n:
        raise ShardError(f"{where} is out of range: shards of {n} are 0 to {n - 1}")
    return i, n


@dataclass(frozen=True)
class Shard:
    """
    One shard of a run, as its summary names it.

    @ivar runId: the run's identity (L{runIdentity} or C{--run-id}).
    @ivar index: the shard's index, from 0.
    @ivar count: how many shards the run has.
    @ivar description: the whole run, as L{describeSettings} says it.
    @ivar thresholds: the thresholds asked of the whole run, by option.
    @ivar size: bytes per message (or per stretch of a stream).
    """

    runId: str
    index: int
    count: int
    description: str
    thresholds: Mapping[str, float]
    size: int

    def asJSON(self, settings: ClientSettings) -> dict[str, Any]:
        """
        The summary's keys for this shard, whose own settings are
        C{settings}.
        """
        return {
            "run_id": self.runId,
            "run_description": self.description,
            "run_thresholds": dict(self.thresholds),
            "shard": self.index,
            "shards": self.count,
            "size": self.size,
            "share": {
                "connections": settings.connections,
                "rate": settings.rate or None,
                "count": settings.limit or None,
            },
        }


def splitRun(
    settings: ClientSettings,
    index: int = 0,
    count: int = 1,
    runId: str = "",
    startAt: float | None = None,
) -> tuple[ClientSettings, Shard]:
    """
    The settings shard C{index} of C{count} runs, and how its summary
    names it.  One shard of one is the run itself, seed and thresholds
    included; a shard of several checks no threshold (they are the whole
    run's, which C{merge} checks).

    @raise ShardError: when the run cannot be split so (fewer connections,
        messages or thousandths of a message per second than shards).
    """
    thresholds = {
        option: getattr(settings, name)
        for option, name in THRESHOLDS.items()
        if getattr(settings, name)
    }
    shard = Shard(
        runId or runIdentity(settings, count, startAt),
        index,
        count,
        describeSettings(settings),
        thresholds,
        settings.size,
    )
    if count == 1:
        return settings, shard
    if settings.connections < count:
        raise ShardError(
            f"--shard {index}/{count} needs at least {count} connections "
            f"(one per shard), not --connections {settings.connections}"
        )
    rate = settings.rate
    if rate and round(rate * RATE_UNITS) < count:
        raise ShardError(f"--rate {rate:g} is too small to split over {count} shards")
    limit = settings.limit
    if limit and not settings.stream and limit < count:
        raise ShardError(
            f"--count {limit} is too few messages to split over {count} shards (one at least each)"
        )
    changes: dict[str, Any] = {
        "connections": share(settings.connections, index, count),
        "seed": shardSeed(settings.seed, index),
        **{name: 0.0 for name in THRESHOLDS.values()},
        "maxLoss": NO_LOSS_LIMIT,
    }
    if rate:
        changes["rate"] = shardRate(rate, index, count)
    if limit and not settings.stream:
        # A stream's --count is per connection: each shard keeps it.
        changes["count"] = share(limit, index, count)
    return replace(settings, **changes), shard
