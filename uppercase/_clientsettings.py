"""
The client's settings, each defined once: L{ClientSettings} (see
L{uppercase._settings} for how a setting becomes an option).

C{uppercase-client} and C{twistd uppercase-client} derive their
L{usage.Options} parameters from it (L{ClientSettings.optParameters}) and
build it from what was parsed (L{ClientSettings.fromOptions}); the protocol
and the factory take it.

Adding a setting is adding a field::

    connections: int = setting(1, None, "How many connections to open.", checkWholeNumber)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from twisted.python import usage

from ._connect import checkDescription
from ._options import checkSeconds, checkWholeNumber
from ._settings import Settings, setting, showSeconds


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


@dataclass(frozen=True)
class ClientSettings(Settings):
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
        showSeconds,
    )
    timeout: float = setting(
        10.0,
        "t",
        "Seconds to wait for the connection, and for each whole reply.",
        functools.partial(checkSeconds, allowZero=False),
        showSeconds,
    )
