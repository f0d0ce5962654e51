"""
The client's settings, each defined once: L{ClientSettings} (see
L{uppercase._settings} for how a setting becomes an option).

C{uppercase-client} and C{twistd uppercase-client} derive their
L{Options} parameters from it (L{ClientSettings.optParameters}) and
build it from what was parsed (L{ClientSettings.fromOptions}); the protocol
and the factory take it.

Adding a setting is adding a field::

    connections: int = setting(1, None, "How many connections to open.", checkWholeNumber)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields

from uppercase._settings import (
    Check,
    Options,
    SettingError,
    Settings,
    checkSeconds,
    checkWholeNumber,
    decimalNumber,
    setting,
    showSeconds,
)
from uppercase.client._connect import checkDescription
from uppercase.net.endpoints import parseProblem


def encodeMessage(text: str) -> bytes:
    """
    The bytes to send for a C{--message}: UTF-8, with any undecodable bytes
    of the command line passed through as they were.
    """
    return text.encode("utf-8", "surrogateescape")


def _checkMessage(options: Options, name: str) -> None:
    options[name] = encodeMessage(options[name])


def _showMessage(message: bytes) -> str:
    return message.decode("utf-8", "surrogateescape")


def _checkEndpoint(options: Options, name: str) -> None:
    try:
        checkDescription(options[name])
    except ValueError as e:
        raise SettingError(f"--{name} {options[name]!r} is not a valid endpoint: {e}") from None


def _checkNumber(options: Options, name: str, unit: str = "a number") -> None:
    raw = options[name]
    try:
        value = decimalNumber(raw)
    except ValueError:
        raise SettingError(f"--{name} must be {unit}, not {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise SettingError(f"--{name} must be {unit}, 0 or more, not {raw!r}")
    options[name] = value


def _checkRate(options: Options, name: str) -> None:
    _checkNumber(options, name, "a number per second")


def _offOr(check: Check, off: object = 0.0) -> Check:
    """
    C{check}, except that C{off} (as C{--help} shows an unset value) or
    nothing is the value C{off}.
    """

    def checkOrOff(options: Options, name: str) -> None:
        if str(options[name]).strip().lower() in ("off", ""):
            options[name] = off
        else:
            check(options, name)

    return checkOrOff


_checkMillis = _offOr(functools.partial(_checkNumber, unit="a number of milliseconds"))
_checkLimitRate = _offOr(_checkRate)


def _checkAtLeastOne(options: Options, name: str) -> None:
    checkWholeNumber(options, name, minimum=1)


MAX_SIZE = 16 * 1024 * 1024
"""The largest --size."""


def _checkSize(options: Options, name: str) -> None:
    checkWholeNumber(options, name, minimum=1)
    if options[name] > MAX_SIZE:
        raise SettingError(f"--{name} must be at most {MAX_SIZE}, not {options[name]}")


def _checkPercent(options: Options, name: str) -> None:
    _checkNumber(options, name, "a percentage")
    if options[name] > 100:
        raise SettingError(f"--{name} must be a percentage, at most 100, not {options[name]:g}")


def _showPercent(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _checkChoice(*choices: str) -> Check:
    def check(options: Options, name: str) -> None:
        value = str(options[name]).strip().lower()
        if value not in choices:
            wanted = " or ".join(repr(c) for c in choices if c)
            raise SettingError(f"--{name} must be {wanted}, not {options[name]!r}")
        options[name] = value

    return check


def _checkMetrics(options: Options, name: str) -> None:
    description = options[name]
    if str(description).strip().lower() in ("off", ""):
        options[name] = ""
        return
    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString

    try:
        serverFromString(reactor, description)
    except Exception as e:
        raise SettingError(
            f"--{name} {description!r} is not a valid endpoint: {parseProblem(e, 'tcp:, tcp6:, unix:, ssl:', description)}"
        ) from None


def _showOff(value: object) -> str:
    return "off" if not value else str(value)


@dataclass(frozen=True)
class ClientSettings(Settings):
    """
    What the repeating client does.

    @ivar connect: the server, as a client endpoint string as typed
        (C{tcp:[::1]:9527} allowed; see L{uppercase.client._connect}).
    @ivar message: the bytes to send; a newline is added.
    @ivar count: how many replies to verify (0: forever).
    @ivar interval: seconds to wait after a reply before sending again.
    @ivar timeout: seconds allowed for connecting, and for each whole reply.

    The rest make it a load run (L{isLoad}), see C{docs/load-testing.md}.
    Thresholds are 0 when not set.
    """

    connect: str = setting(
        "tcp:127.0.0.1:9527",
        "c",
        "The server to connect to, as a client endpoint string.",
        _checkEndpoint,
    )
    message: bytes = setting(
        b"hello",
        "m",
        "The text to send; a newline is added.",
        _checkMessage,
        _showMessage,
    )
    count: int = setting(
        9,
        "n",
        "How many replies to verify (0: forever).",
        checkWholeNumber,
    )
    interval: float = setting(
        1.0,
        "i",
        "Seconds to wait after a reply before sending again.",
        checkSeconds,
        showSeconds,
    )
    timeout: float = setting(
        10.0,
        "t",
        "Seconds to wait for the connection, and for each whole reply; in a "
        "load run, also the most to wait for the replies still due after the "
        "duration or count.",
        functools.partial(checkSeconds, allowZero=False),
        showSeconds,
    )
    connections: int = setting(
        1,
        None,
        "Load: connections to open at once.",
        _checkAtLeastOne,
    )
    pipeline: int = setting(
        0,
        None,
        "Load: most messages in flight per connection "
        "(0: 1 in a closed loop, no limit with --rate).",
        checkWholeNumber,
    )
    rate: float = setting(
        0.0,
        None,
        "Load: messages per second in all, sent on schedule (open loop); "
        "0: each connection sends as fast as its pipeline allows (closed loop).",
        _checkRate,
        showSeconds,
    )
    duration: float = setting(
        0.0,
        None,
        "Load: seconds to send for, after the warm-up (0: until --count "
        "messages; with a duration, --count is not used).",
        checkSeconds,
        showSeconds,
    )
    warmup: float = setting(
        0.0,
        None,
        "Load: seconds to send before measuring (left out of the figures).",
        checkSeconds,
        showSeconds,
    )
    size: int = setting(64, None, "Load: bytes per message.", _checkSize)
    payload: str = setting(
        "random",
        None,
        "Load: 'random' (seeded, every byte value, distinct per message) or "
        "'text' (--message repeated to --size, ending in a newline).",
        _checkChoice("random", "text"),
    )
    seed: int = setting(0, None, "Load: the seed of random payloads.", checkWholeNumber)
    sendProxy: str = setting(
        "",
        None,
        "Send a PROXY protocol header first, as HAProxy does: v1 or v2.",
        _offOr(_checkChoice("v1", "v2"), ""),
        _showOff,
        name="send-proxy",
    )
    maxP50: float = setting(
        0.0,
        None,
        "Fail unless p50 latency is at most this many ms.",
        _checkMillis,
        _showOff,
        name="max-p50",
    )
    maxP99: float = setting(
        0.0,
        None,
        "Fail unless p99 latency is at most this many ms.",
        _checkMillis,
        _showOff,
        name="max-p99",
    )
    maxP999: float = setting(
        0.0,
        None,
        "Fail unless p99.9 latency is at most this many ms.",
        _checkMillis,
        _showOff,
        name="max-p999",
    )
    minRate: float = setting(
        0.0,
        None,
        "Fail unless at least this many messages/s were verified.",
        _checkLimitRate,
        _showOff,
        name="min-rate",
    )
    minMbps: float = setting(
        0.0,
        None,
        "Fail unless at least this many MB/s were verified.",
        _checkLimitRate,
        _showOff,
        name="min-mbps",
    )
    metrics: str = setting(
        "",
        None,
        "Serve Prometheus metrics of the load run at /metrics on this server endpoint.",
        _checkMetrics,
        _showOff,
    )
    maxLoss: float = setting(
        0.0,
        None,
        "UDP load: fail if more than this percentage of the datagrams is lost (0: any loss fails).",
        _checkPercent,
        _showPercent,
        name="max-loss",
    )
    stream: bool = False
    """Load: stream random bytes full duplex instead of messages (a flag)."""
    failFast: bool = False
    """Load: stop at the first wrong byte (a flag)."""
    plain: bool = False
    """Expect every reply unchanged (an RFC 862 echo), not uppercased (a flag)."""
    load: bool = False
    """A load option was given, if only at its default value."""

    @property
    def isLoad(self) -> bool:
        """
        Whether these settings ask for a load run rather than the ping-like
        client: a load option given (L{load}), or any load setting or
        threshold away from its default.
        """
        if self.load:
            return True
        defaults = ClientSettings()
        return any(getattr(self, name) != getattr(defaults, name) for name in LOAD_FIELDS)

    @property
    def mode(self) -> str:
        """
        C{"stream"}, C{"open"} (with C{--rate}) or C{"closed"} loop.
        """
        if self.stream:
            return "stream"
        return "open" if self.rate else "closed"

    @property
    def effectivePipeline(self) -> int:
        """
        The most messages in flight per connection (0: no limit).
        """
        if self.pipeline:
            return self.pipeline
        return 0 if self.rate else 1

    @property
    def limit(self) -> int:
        """
        How many messages (in a stream, C{--size} units per connection) the
        run sends in all; 0: no limit (a duration ends it, or nothing).
        """
        return 0 if self.duration else self.count


LOAD_FIELDS = tuple(
    f.name
    for f in fields(ClientSettings)
    if f.name
    not in ("connect", "message", "count", "interval", "timeout", "sendProxy", "load", "plain")
)
"""The settings that make a run a load run."""

LOAD_OPTIONS = tuple(
    f.metadata["option"].name or f.name
    for f in fields(ClientSettings)
    if f.name in LOAD_FIELDS and "option" in f.metadata
)
"""The options (as typed, without C{--}) of L{LOAD_FIELDS} that take a
value."""
