"""
The client's settings, each defined once: L{ClientSettings}.

Each field carries its default and, in its metadata, how it appears on the
command line (short flag, help, how to check and convert the typed text).
C{uppercase-client} and C{twistd uppercase-client} derive their
L{usage.Options} parameters from it (L{ClientSettings.optParameters}) and
build it from what was parsed (L{ClientSettings.fromOptions}); the protocol
and the factory take it.

Adding a setting is adding a field::

    connections: int = setting(1, None, "How many connections to open.", checkWholeNumber)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping

from twisted.python import usage

from ._connect import checkDescription
from ._options import checkSeconds, checkWholeNumber

Check = Callable[[usage.Options, str], None]
"""Replaces C{options[name]}, the text typed, with the setting's value, or
raises L{usage.UsageError} naming the option."""


@dataclass(frozen=True)
class OptionSpec:
    """
    How a setting appears on the command line.

    @ivar short: its one-letter flag, or L{None}.
    @ivar help: its line in C{--help}.
    @ivar check: see L{Check}.
    @ivar show: the default as one would type it (C{--help} shows it).
    """

    short: str | None
    help: str
    check: Check
    show: Callable[[Any], str] = str


def setting(
    default: object,
    short: str | None,
    help: str,
    check: Check,
    show: Callable[[Any], str] = str,
) -> Any:
    """
    A L{ClientSettings} field: its default, and its L{OptionSpec}.
    """
    return field(default=default, metadata={"option": OptionSpec(short, help, check, show)})


def encodeMessage(text: str) -> bytes:
    """
    The bytes to send for a C{--message}: UTF-8, with any undecodable bytes
    of the command line passed through as they were.
    """
    return text.encode("utf-8", "surrogateescape")


def _checkMessage(options: usage.Options, name: str) -> None:
    options[name] = encodeMessage(options[name])


def _showMessage(message: bytes) -> str:
    return message.decode("utf-8", "surrogateescape")


def _checkEndpoint(options: usage.Options, name: str) -> None:
    try:
        checkDescription(options[name])
    except ValueError as e:
        raise usage.UsageError(f"--{name} {options[name]!r} is not a valid endpoint: {e}") from None


def _showSeconds(seconds: float) -> str:
    return f"{seconds:g}"


@dataclass(frozen=True)
class ClientSettings:
    """
    What the repeating client does.

    @ivar connect: the server, as a client endpoint string as typed
        (C{tcp:[::1]:9527} allowed; see L{uppercase._connect}).
    @ivar message: the bytes to send; a newline is added.
    @ivar count: how many replies to verify (0: forever).
    @ivar interval: seconds to wait after a reply before sending again.
    @ivar timeout: seconds allowed for connecting, and for each whole reply.
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
        _showSeconds,
    )
    timeout: float = setting(
        10.0,
        "t",
        "Seconds to wait for the connection, and for each whole reply.",
        functools.partial(checkSeconds, allowZero=False),
        _showSeconds,
    )

    @classmethod
    def optParameters(cls) -> list[list[Any]]:
        """
        The L{usage.Options} C{optParameters}: one C{[name, short, default,
        help]} per field, in order.
        """
        return [[f.name, spec.short, spec.show(f.default), spec.help] for f, spec in _specs(cls)]

    @classmethod
    def fromOptions(cls, options: usage.Options) -> ClientSettings:
        """
        Check and convert each setting's value in C{options} (in place, in
        field order), and build the settings from them.

        @raise usage.UsageError: naming the first option with a bad value.
        """
        for f, spec in _specs(cls):
            spec.check(options, f.name)
        values: Mapping[str, Any] = {f.name: options[f.name] for f, _ in _specs(cls)}
        return cls(**values)


def _specs(cls: type[ClientSettings]) -> list[tuple[Any, OptionSpec]]:
    return [(f, f.metadata["option"]) for f in fields(cls)]
