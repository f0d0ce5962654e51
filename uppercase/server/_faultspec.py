"""
What a C{--fault} says: L{parseFault} reads C{KIND[,NAME=VALUE...]} into a
L{FaultSpec}, and L{FaultSpec.describe} writes it back; a bad one is a
L{FaultError} naming the fault and the field.  Pure: no I/O, no Twisted.

Durations take C{ms} or C{s} (C{20ms}, C{1.5s}); sizes C{B}, C{KB} or C{MB},
1000-based as the reports are (C{10KB} is 10,000 bytes; a bare number is
bytes); a rate is a size a second (C{1MB} or C{1MB/s}); probabilities are
from 0 to 1.  Every fault takes C{toxicity=P} (the fraction of connections
it applies to) and C{on=PORT-or-PATH} (only the listener with that port or
UNIX-socket path).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from uppercase._settings import decimalNumber

__all__ = ["KINDS", "MAX_SPEC_LENGTH", "FaultError", "FaultSpec", "parseFault"]


class FaultError(ValueError):
    """
    A fault's text is wrong: one line naming the fault and the field
    (C{latency: delay must be a duration such as 20ms or 1.5s}).
    """


DURATION = "a duration such as 20ms or 1.5s"
SIZE = "a size such as 500B, 10KB or 1MB"
SIZE_OR_DURATION = "a size such as 10KB or a duration such as 1.5s"
RATE = "a rate such as 1MB (bytes a second)"
PROBABILITY = "a probability from 0 to 1"

MAX_SPEC_LENGTH = 512
"""Most characters in a fault's text, and in its canonical text
(L{FaultSpec.describe}): a few dozen say any fault, and a UNIX-socket path
(C{on=}) is at most 108 bytes.  It bounds what the supervisor of
C{--workers} sends its workers on one line."""

_REQUIRED = object()

# Per kind: its own fields, in the order describe() writes them, and their
# default (_REQUIRED: the field must be given).
_FIELDS: dict[str, dict[str, Any]] = {
    "latency": {"delay": _REQUIRED, "jitter": 0.0},
    "bandwidth": {"rate": _REQUIRED},
    "slicer": {"size": _REQUIRED, "variation": 0, "delay": 0.0},
    "stall": {"after": _REQUIRED},
    "blackhole": {"after": (0, None)},
    "reset": {"after": (0, None)},
    "close": {"after": _REQUIRED},
    "slow-close": {"delay": _REQUIRED},
    "corrupt": {"probability": _REQUIRED},
    "refuse": {"probability": 1.0},
    "delay-accept": {"delay": _REQUIRED},
}

KINDS: tuple[str, ...] = tuple(_FIELDS)
"""Every fault's kind, in the order the documentation lists them."""


@dataclass(frozen=True)
class FaultSpec:
    """
    One fault as configured.  Only the fields of its kind mean anything; the
    others keep their defaults.

    @ivar kind: one of L{KINDS}.
    @ivar delay: seconds (C{latency}, C{slicer}, C{slow-close}, C{delay-accept}).
    @ivar jitter: seconds either side of C{delay} (C{latency}).
    @ivar rate: bytes a second (C{bandwidth}).
    @ivar size: bytes a write (C{slicer}).
    @ivar variation: bytes either side of C{size} (C{slicer}).
    @ivar afterBytes: reply bytes before it acts (C{stall}, C{blackhole},
        C{reset}, C{close}), when it acts after a size.
    @ivar afterSeconds: seconds after the connection was accepted before it
        acts (C{stall}, C{blackhole}, C{reset}), when it acts after a time.
    @ivar probability: per reply chunk (C{corrupt}), per connection (C{refuse}).
    @ivar toxicity: the fraction of connections it applies to.
    @ivar on: the listener's port or UNIX-socket path it is limited to, or
        L{None} for every listener.
    """

    kind: str
    delay: float = 0.0
    jitter: float = 0.0
    rate: int = 0
    size: int = 0
    variation: int = 0
    afterBytes: int | None = None
    afterSeconds: float | None = None
    probability: float = 1.0
    toxicity: float = 1.0
    on: str | None = None

    def _own(self) -> dict[str, Any]:
        """Its kind's fields, with their values (C{after}: a pair)."""
        values: dict[str, Any] = {}
        for name in _FIELDS[self.kind]:
            if name == "after":
                values[name] = (self.afterBytes, self.afterSeconds)
            else:
                values[name] = getattr(self, name)
        return values

    def describe(self) -> str:
        """
        The canonical text of this fault: L{parseFault} of it gives it back.
        Fields at their default are left out.
        """
        parts = [self.kind]
        for name, value in self._own().items():
            default = _FIELDS[self.kind][name]
            if default is _REQUIRED or value != default:
                parts.append(f"{name}={_SHOW[name](value)}")
        if self.toxicity != 1.0:
            parts.append(f"toxicity={_showNumber(self.toxicity)}")
        if self.on is not None:
            parts.append(f"on={self.on}")
        return ",".join(parts)

    def asJSON(self) -> dict[str, Any]:
        """
        This fault as JSON: its C{kind}, its C{spec} (L{describe}), and each
        of its fields (C{after} as C{afterBytes} or C{afterSeconds}),
        C{toxicity} and C{on}.
        """
        document: dict[str, Any] = {"kind": self.kind, "spec": self.describe()}
        for name, value in self._own().items():
            if name == "after":
                afterBytes, afterSeconds = value
                if afterSeconds is not None:
                    document["afterSeconds"] = afterSeconds
                else:
                    document["afterBytes"] = afterBytes
            else:
                document[name] = value
        document["toxicity"] = self.toxicity
        document["on"] = self.on
        return document


def parseFault(text: str) -> FaultSpec:
    """
    The fault C{text} says (C{KIND[,NAME=VALUE...]}).

    @raise FaultError: for an unknown kind or field, a missing required
        field, a field given twice, a bad value, or more than
        L{MAX_SPEC_LENGTH} characters.
    """
    if len(str(text)) > MAX_SPEC_LENGTH:
        raise _tooLong(str(text))
    kind, *items = [part.strip() for part in str(text).strip().split(",")]
    if kind not in _FIELDS:
        raise FaultError(f"{kind!r} is not a fault: one of {', '.join(KINDS)}")
    own = _FIELDS[kind]
    given: dict[str, str] = {}
    for item in items:
        name, equals, value = item.partition("=")
        name = name.strip()
        if not equals:
            raise FaultError(f"{kind}: {item!r} must be NAME=VALUE")
        if name not in own and name not in ("toxicity", "on"):
            known = ", ".join([*own, "toxicity", "on"])
            raise FaultError(f"{kind}: no field {name!r} (it takes {known})")
        if name in given:
            raise FaultError(f"{kind}: {name} given twice")
        given[name] = value.strip()
    values: dict[str, Any] = {}
    for name, default in own.items():
        if name not in given:
            if default is _REQUIRED:
                raise FaultError(f"{kind}: {name} is required")
            continue
        values[name] = _read(kind, name, given[name])
    if "after" in values:
        values["afterBytes"], values["afterSeconds"] = values.pop("after")
    elif "after" in own:
        values["afterBytes"] = 0
    if "toxicity" in given:
        values["toxicity"] = _read(kind, "toxicity", given["toxicity"])
    if "on" in given:
        values["on"] = _readListener(kind, given["on"])
    spec = FaultSpec(kind, **values)
    if kind == "slicer" and spec.variation >= spec.size:
        raise FaultError(f"slicer: variation must be less than size ({_showSize(spec.size)})")
    if len(spec.describe()) > MAX_SPEC_LENGTH:
        # So that the text passed on (to workers) parses wherever it goes.
        raise _tooLong(spec.describe())
    return spec


def _tooLong(text: str) -> FaultError:
    kind = text.strip().split(",", 1)[0][:20]
    return FaultError(f"{kind}: a fault is at most {MAX_SPEC_LENGTH} characters, not {len(text)}")


def _read(kind: str, name: str, text: str) -> Any:
    reader, what = (_readSizeAfter, SIZE) if (kind, name) == ("close", "after") else _READ[name]
    try:
        return reader(text)
    except ValueError:
        raise FaultError(f"{kind}: {name} must be {what}") from None


def _number(text: str) -> float:
    value = decimalNumber(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(text)
    return value


def _readDuration(text: str) -> float:
    lowered = text.strip().lower()
    if lowered.endswith("ms"):
        return _number(lowered[:-2]) / 1000
    if lowered.endswith("s"):
        return _number(lowered[:-1])
    raise ValueError(text)


_UNITS = (("mb", 1000000), ("kb", 1000), ("b", 1))


def _readSize(text: str) -> int:
    lowered = text.strip().lower()
    for unit, multiplier in _UNITS:
        if lowered.endswith(unit):
            lowered, scale = lowered[: -len(unit)], multiplier
            break
    else:
        scale = 1
    value = _number(lowered) * scale
    whole = round(value)
    if abs(value - whole) > 1e-6 * max(1.0, value):
        raise ValueError(text)
    return int(whole)


def _readPositiveSize(text: str) -> int:
    value = _readSize(text)
    if value < 1:
        raise ValueError(text)
    return value


def _readRate(text: str) -> int:
    stripped = text.strip()
    if stripped.lower().endswith("/s"):
        stripped = stripped[:-2]
    return _readPositiveSize(stripped)


def _readAfter(text: str) -> tuple[int | None, float | None]:
    lowered = text.strip().lower()
    if lowered.endswith("s") and not lowered.endswith("b"):
        return None, _readDuration(lowered)
    return _readSize(lowered), None


def _readSizeAfter(text: str) -> tuple[int | None, float | None]:
    return _readSize(text), None


def _readProbability(text: str) -> float:
    value = _number(text)
    if value > 1:
        raise ValueError(text)
    return value


def _readListener(kind: str, text: str) -> str:
    if text.isdigit() and text.isascii():
        if not 1 <= int(text) <= 65535:
            raise FaultError(f"{kind}: on must be a port from 1 to 65535 or a UNIX-socket path")
        return str(int(text))
    if not text:
        raise FaultError(f"{kind}: on must be a listener's port or UNIX-socket path")
    return text


_READ: dict[str, tuple[Callable[[str], Any], str]] = {
    "delay": (_readDuration, DURATION),
    "jitter": (_readDuration, DURATION),
    "rate": (_readRate, RATE),
    "size": (_readPositiveSize, SIZE),
    "variation": (_readSize, SIZE),
    "after": (_readAfter, SIZE_OR_DURATION),
    "probability": (_readProbability, PROBABILITY),
    "toxicity": (_readProbability, PROBABILITY),
}


def _showNumber(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def _showDuration(seconds: float) -> str:
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    millis = seconds * 1000
    if seconds < 1 and millis == int(millis) and int(millis) / 1000 == seconds:
        return f"{int(millis)}ms"
    return f"{seconds!r}s"


def _showSize(size: int) -> str:
    for unit, multiplier in _UNITS:
        if size and size % multiplier == 0:
            return f"{size // multiplier}{unit.upper()}"
    return f"{size}B"


def _showAfter(value: tuple[int | None, float | None]) -> str:
    afterBytes, afterSeconds = value
    if afterSeconds is not None:
        return _showDuration(afterSeconds)
    return _showSize(afterBytes or 0)


_SHOW: dict[str, Callable[[Any], str]] = {
    "delay": _showDuration,
    "jitter": _showDuration,
    "rate": _showSize,
    "size": _showSize,
    "variation": _showSize,
    "after": _showAfter,
    "probability": _showNumber,
}
