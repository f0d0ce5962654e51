"""
Tests for L{uppercase.server._faultspec}: a fault's text read and written.
"""

from __future__ import annotations

from typing import Any, Callable

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from uppercase.server import FaultError, FaultSpec, parseFault
from uppercase.server._faultspec import KINDS, MAX_SPEC_LENGTH


class ParseTests(SynchronousTestCase):
    """
    L{parseFault} reads units, defaults and the common fields.
    """

    def test_units(self) -> None:
        """
        Durations take ms and s; sizes B, KB and MB, 1000-based (a bare
        number is bytes); a rate may end in /s.
        """
        self.assertEqual(parseFault("latency,delay=20ms,jitter=1.5s").delay, 0.02)
        self.assertEqual(parseFault("latency,delay=20ms,jitter=1.5s").jitter, 1.5)
        self.assertEqual(parseFault("close,after=10KB").afterBytes, 10000)
        self.assertEqual(parseFault("close,after=2MB").afterBytes, 2000000)
        self.assertEqual(parseFault("slicer,size=100").size, 100)
        self.assertEqual(parseFault("bandwidth,rate=1MB/s").rate, 1000000)
        self.assertEqual(parseFault("bandwidth,rate=1.5KB").rate, 1500)

    def test_afterSizeOrDuration(self) -> None:
        """
        C{after} is a size or a duration, told apart by the unit.
        """
        spec = parseFault("stall,after=1s")
        self.assertEqual((spec.afterBytes, spec.afterSeconds), (None, 1.0))
        spec = parseFault("reset,after=64KB")
        self.assertEqual((spec.afterBytes, spec.afterSeconds), (64000, None))

    def test_defaults(self) -> None:
        """
        Optional fields take their defaults: no jitter, toxicity 1, every
        listener, refuse always, blackhole and reset at once.
        """
        spec = parseFault("latency,delay=1s")
        self.assertEqual((spec.jitter, spec.toxicity, spec.on), (0.0, 1.0, None))
        self.assertEqual(parseFault("refuse").probability, 1.0)
        self.assertEqual(parseFault("reset").afterBytes, 0)

    def test_common(self) -> None:
        """
        Every fault takes C{toxicity} and C{on} (a port or a path).
        """
        for kind in KINDS:
            required = {
                "latency": ",delay=1s",
                "bandwidth": ",rate=1KB",
                "slicer": ",size=10",
                "stall": ",after=1s",
                "close": ",after=1KB",
                "slow-close": ",delay=1s",
                "corrupt": ",probability=0.5",
                "delay-accept": ",delay=1s",
            }.get(kind, "")
            spec = parseFault(f"{kind}{required},toxicity=0.25,on=/run/x.sock")
            self.assertEqual((spec.kind, spec.toxicity, spec.on), (kind, 0.25, "/run/x.sock"))
        self.assertEqual(parseFault("refuse,on=9527").on, "9527")

    def test_errors(self) -> None:
        """
        Each mistake is one line naming the fault and the field.
        """
        cases = {
            "latency,delay=abc": "latency: delay must be a duration such as 20ms or 1.5s",
            "latency,delay=20": "latency: delay must be a duration such as 20ms or 1.5s",
            "latency,delay=-1s": "latency: delay must be a duration such as 20ms or 1.5s",
            "latency": "latency: delay is required",
            "latency,delay=1s,size=3": "latency: no field 'size' (it takes delay, jitter, "
            "toxicity, on)",
            "latency,delay=1s,delay=2s": "latency: delay given twice",
            "latency,delay": "latency: 'delay' must be NAME=VALUE",
            "slow": "'slow' is not a fault: one of " + ", ".join(KINDS),
            "close,after=1s": "close: after must be a size such as 500B, 10KB or 1MB",
            "close,after=1.5B": "close: after must be a size such as 500B, 10KB or 1MB",
            "corrupt,probability=2": "corrupt: probability must be a probability from 0 to 1",
            "refuse,toxicity=nan": "refuse: toxicity must be a probability from 0 to 1",
            "bandwidth,rate=0": "bandwidth: rate must be a rate such as 1MB (bytes a second)",
            "slicer,size=10,variation=10": "slicer: variation must be less than size (10B)",
            "refuse,on=70000": "refuse: on must be a port from 1 to 65535 or a UNIX-socket path",
            "refuse,on=": "refuse: on must be a listener's port or UNIX-socket path",
        }
        for text, message in cases.items():
            error = self.assertRaises(FaultError, parseFault, text)
            self.assertEqual(str(error), message, text)


class DescribeTests(SynchronousTestCase):
    """
    L{FaultSpec.describe} and L{FaultSpec.asJSON}.
    """

    def test_canonical(self) -> None:
        """
        Defaults are left out; sizes and durations take their largest
        exact unit.
        """
        cases = {
            "latency,delay=0.02s,jitter=0s": "latency,delay=20ms",
            "close,after=10000": "close,after=10KB",
            "stall,after=1500ms": "stall,after=1.5s",
            "refuse,probability=1,toxicity=1": "refuse",
            "bandwidth,rate=1000000/s": "bandwidth,rate=1MB",
        }
        for text, canonical in cases.items():
            self.assertEqual(parseFault(text).describe(), canonical)

    def test_asJSON(self) -> None:
        """
        The JSON has the kind, the canonical text, and each field.
        """
        self.assertEqual(
            parseFault("reset,after=64KB,on=9527").asJSON(),
            {
                "kind": "reset",
                "spec": "reset,after=64KB,on=9527",
                "afterBytes": 64000,
                "toxicity": 1.0,
                "on": "9527",
            },
        )


_durations = st.one_of(
    st.integers(0, 100000).map(lambda ms: ms / 1000),
    st.floats(0, 1e6, allow_nan=False, allow_infinity=False),
)
_sizes = st.integers(1, 10**9)
_probabilities = st.floats(0, 1, allow_nan=False)


@st.composite
def specs(draw: st.DrawFn) -> FaultSpec:
    kind = draw(st.sampled_from(KINDS))
    common: dict[str, Any] = {
        "toxicity": draw(_probabilities),
        "on": draw(st.one_of(st.none(), st.integers(1, 65535).map(str), st.just("/run/a.sock"))),
    }
    if kind in ("stall", "blackhole", "reset"):
        if draw(st.booleans()):
            common["afterSeconds"] = draw(_durations)
        else:
            common["afterBytes"] = draw(st.integers(0, 10**9))
    makers: dict[str, Callable[[], dict[str, Any]]] = {
        "latency": lambda: {"delay": draw(_durations), "jitter": draw(_durations)},
        "bandwidth": lambda: {"rate": draw(_sizes)},
        "slicer": lambda: {
            "size": draw(st.integers(2, 10**6)),
            "variation": 1,
            "delay": draw(_durations),
        },
        "close": lambda: {"afterBytes": draw(st.integers(0, 10**9))},
        "slow-close": lambda: {"delay": draw(_durations)},
        "corrupt": lambda: {"probability": draw(_probabilities)},
        "refuse": lambda: {"probability": draw(_probabilities)},
        "delay-accept": lambda: {"delay": draw(_durations)},
    }
    own = makers.get(kind, dict)()
    return FaultSpec(kind, **own, **common)


class RoundTripTests(SynchronousTestCase):
    """
    What L{FaultSpec.describe} writes, L{parseFault} reads back.
    """

    @given(specs())
    def test_roundTrip(self, spec: FaultSpec) -> None:
        """
        C{parseFault(spec.describe()) == spec}, and describing again gives
        the same text.
        """
        again = parseFault(spec.describe())
        self.assertEqual(again, spec)
        self.assertEqual(again.describe(), spec.describe())


class LengthTests(SynchronousTestCase):
    """
    A fault's text, and its canonical text, are at most L{MAX_SPEC_LENGTH}
    characters.
    """

    def test_atTheLimit(self) -> None:
        """
        A spec of exactly L{MAX_SPEC_LENGTH} characters parses.
        """
        head = "latency,delay=1ms,on=/"
        text = head + "\N{GRINNING FACE}" * (MAX_SPEC_LENGTH - len(head))
        self.assertEqual(parseFault(text).on, text[len("latency,delay=1ms,on=") :])

    def test_tooLong(self) -> None:
        """
        One character more: one line naming the fault and the bound.
        """
        text = "latency,delay=1ms,on=/" + "x" * MAX_SPEC_LENGTH
        error = self.assertRaises(FaultError, parseFault, text)
        self.assertEqual(str(error), f"latency: a fault is at most 512 characters, not {len(text)}")

    def test_canonicalTooLong(self) -> None:
        """
        A spec whose canonical text would be over the bound (here by the
        unit C{B} it adds) is refused too, so that the text passed on to
        workers always parses again.
        """
        head = "slicer,size=7,on=/"
        text = head + "x" * (MAX_SPEC_LENGTH - len(head))
        self.assertEqual(len(text), MAX_SPEC_LENGTH)
        error = self.assertRaises(FaultError, parseFault, text)
        self.assertIn("at most 512 characters, not 513", str(error))
