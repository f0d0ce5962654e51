"""
Faults the server injects (issue 19): stand-in until part A lands.

Only the names the control API (L{uppercase.server._control}) uses, with
the behaviour it relies on: L{parseFault} accepts C{KIND[,NAME=VALUE...]}
for any C{KIND} and keeps the fields as strings; a L{FaultSet} numbers the
faults it holds.  Part A's module replaces this one whole; nothing here
injects anything.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

__all__ = ["FaultError", "FaultSet", "FaultSpec", "parseFault"]


class FaultError(ValueError):
    """
    A fault's spec is wrong; the message is one line naming the fault and
    the field (C{latency: delay must be ...}).
    """


@dataclass(frozen=True)
class FaultSpec:
    """
    One fault: its kind, and its fields as given.
    """

    kind: str
    fields: tuple[tuple[str, str], ...] = field(default=())

    def describe(self) -> str:
        """
        The spec as it is written (C{latency,delay=20ms}).
        """
        return ",".join([self.kind, *(f"{name}={value}" for name, value in self.fields)])

    def asJSON(self) -> dict[str, Any]:
        """
        The fault as a JSON object: its kind and its fields.
        """
        return {"kind": self.kind, **dict(self.fields)}


def parseFault(text: str) -> FaultSpec:
    """
    Read C{KIND[,NAME=VALUE...]}.

    @raise FaultError: if there is no kind, or a field has no C{=}.
    """
    kind, *rest = str(text).strip().split(",")
    kind = kind.strip()
    if not kind:
        raise FaultError(f"{text!r} names no fault: KIND[,NAME=VALUE...]")
    fields = []
    for item in rest:
        name, equals, value = item.partition("=")
        if not equals or not name.strip():
            raise FaultError(f"{kind}: {item!r} is not NAME=VALUE")
        fields.append((name.strip(), value.strip()))
    return FaultSpec(kind, tuple(fields))


class FaultSet:
    """
    The faults a server applies, each with an id (from 1, never reused).

    @ivar seed: the seed of every random choice.
    @ivar applied: how many times each kind was applied.
    """

    def __init__(self, specs: Iterable[FaultSpec] = (), seed: int | None = None) -> None:
        self.seed = random.getrandbits(32) if seed is None else seed
        self.applied: Counter[str] = Counter()
        self._specs: dict[int, FaultSpec] = {}
        self._next = 1
        for spec in specs:
            self.add(spec)

    def list(self) -> list[tuple[int, FaultSpec]]:
        """
        Every fault with its id, in the order they were added.
        """
        return list(self._specs.items())

    def add(self, spec: FaultSpec) -> int:
        """
        Add C{spec}; return its id.
        """
        id = self._next
        self._next += 1
        self._specs[id] = spec
        return id

    def remove(self, id: int) -> bool:
        """
        Remove the fault C{id}; whether there was one.
        """
        return self._specs.pop(id, None) is not None

    def clear(self) -> int:
        """
        Remove every fault; return how many there were.
        """
        count = len(self._specs)
        self._specs.clear()
        return count
