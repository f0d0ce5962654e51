"""
The server's live faults (L{FaultSet}), shared by every connection, and the
names the rest of the package imports: L{FaultError}, L{FaultSpec} and
L{parseFault} (from L{uppercase.server._faultspec}).

Each accepted connection draws from the set once, in accept order
(L{FaultSet.draw}): its own generator, seeded from the set's, decides which
faults apply to it (each by its C{toxicity}, and C{refuse} by its
C{probability}) and then every random choice of its life (jitter, slice
sizes, corrupt offsets).  So the same seed gives the same set of affected
connections, and the same choices for each, for the same sequence of
connections, however their bytes arrive.  A change to the set affects the
connections accepted after it; those already open keep what they drew.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import Counter
from random import Random
from typing import Iterable, Sequence

from uppercase.server._faultplan import ConnectionFaults
from uppercase.server._faultspec import (
    KINDS,
    MAX_SPEC_LENGTH,
    FaultError,
    FaultSpec,
    parseFault,
)

__all__ = [
    "KINDS",
    "MAX_FAULTS",
    "MAX_SPEC_LENGTH",
    "FaultError",
    "FaultSet",
    "FaultSpec",
    "TooManyFaults",
    "parseFault",
    "workerSeed",
]


MAX_FAULTS = 64
"""Most faults a L{FaultSet} holds at once: more than anyone combines, and
with L{MAX_SPEC_LENGTH} it bounds the line that passes them to workers."""


class TooManyFaults(FaultError):
    """
    A fault added to a L{FaultSet} that holds L{MAX_FAULTS} already.
    """


def workerSeed(seed: int, worker: int) -> int:
    """
    The seed of worker number C{worker} of C{--workers}, from the server's
    C{seed}: the first 8 bytes of SHA-256 of C{"SEED/WORKER"}, so that each
    worker's sequence differs and is the same from run to run.
    """
    digest = hashlib.sha256(f"{seed}/{worker}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


class FaultSet:
    """
    The faults a server applies, by id (from 1, never reused).

    @ivar seed: the seed in use (a random one if none was given).
    @ivar applied: how many connections got each fault so far, by kind.
    """

    def __init__(self, specs: Sequence[FaultSpec] = (), seed: int | None = None) -> None:
        self.seed = secrets.randbelow(2**32) if seed is None else seed
        self._rng = Random(self.seed)
        self._faults: dict[int, FaultSpec] = {}
        self._lastID = 0
        self.applied: Counter[str] = Counter()
        for spec in specs:
            self.add(spec)

    def __len__(self) -> int:
        return len(self._faults)

    def list(self) -> list[tuple[int, FaultSpec]]:
        """
        Every fault, with its id, in the order they were added.
        """
        return list(self._faults.items())

    def add(self, spec: FaultSpec) -> int:
        """
        Add C{spec}.

        @return: its id.
        @raise TooManyFaults: if it holds L{MAX_FAULTS} already.
        """
        if len(self._faults) >= MAX_FAULTS:
            raise TooManyFaults(
                f"{spec.kind}: at most {MAX_FAULTS} faults at once (remove one first)"
            )
        self._lastID += 1
        self._faults[self._lastID] = spec
        return self._lastID

    def remove(self, id: int) -> bool:
        """
        Remove the fault C{id}.

        @return: whether there was one.
        """
        return self._faults.pop(id, None) is not None

    def clear(self) -> int:
        """
        Remove every fault.

        @return: how many there were.
        """
        count = len(self._faults)
        self._faults.clear()
        return count

    def describe(self) -> str:
        """
        The faults and the seed, as the start-up line says them
        (C{latency,delay=20ms, corrupt,probability=0.5; seed 7}, or
        C{none; seed 7} before C{--control} adds any).
        """
        faults = ", ".join(spec.describe() for spec in self._faults.values())
        return f"{faults or 'none'}; seed {self.seed}"

    def draw(self, listener: Iterable[str], now: float) -> ConnectionFaults | None:
        """
        The faults a connection accepted now on C{listener} gets (see the
        module's docstring), counted in L{applied}; L{None} if none.

        @param listener: what names the listener that accepted it: its port,
            or its UNIX socket's path (what a fault's C{on} may say).
        """
        if not self._faults:
            return None
        rng = Random(self._rng.getrandbits(64))
        names = set(listener)
        chosen = []
        for spec in self._faults.values():
            # Every fault draws, whether it applies or not: which
            # connections one fault affects does not depend on the others.
            affected = rng.random() < spec.toxicity
            if spec.kind == "refuse":
                affected = rng.random() < spec.probability and affected
            if affected and (spec.on is None or spec.on in names):
                chosen.append(spec)
        if not chosen:
            return None
        faults = ConnectionFaults(chosen, rng, now)
        self.applied.update(faults.kinds)
        return faults

    def counts(self) -> dict[str, int]:
        """
        L{applied} for every kind (0 for those never applied).
        """
        return {kind: self.applied[kind] for kind in KINDS}
