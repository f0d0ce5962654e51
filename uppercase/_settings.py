"""
Settings defined once: a frozen dataclass whose fields carry their default
and, in their metadata, how they appear on the command line (option name,
short flag, help, how to check and convert the typed text).  The options
classes (L{uppercase.cli}) derive their C{optParameters} from it and build it
from what was parsed; the code that runs takes it, or its defaults.

Nothing here parses a command line: a check reads and replaces one value of
a mapping and raises L{SettingError}, which the command line reports as the
usage error it is.  So the server and the client, which define their
settings with these, import no command-line code.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from typing import Any, Callable, MutableMapping, TypeVar

__all__ = [
    "Check",
    "OptionSpec",
    "Options",
    "SettingError",
    "Settings",
    "checkSeconds",
    "checkWholeNumber",
    "decimalNumber",
    "setting",
    "showSeconds",
    "wholeNumber",
]


class SettingError(ValueError):
    """
    A setting's value is wrong; the message says which option and why, as
    one line (C{--idle-timeout must be a number of seconds, not 'x'}).
    """


Options = MutableMapping[str, Any]
"""The options as parsed: each option's name and the text typed (a
L{twisted.python.usage.Options} is one)."""

Check = Callable[[Options, str], None]
"""Replaces C{options[name]}, the text typed, with the setting's value, or
raises L{SettingError} naming the option."""


@dataclass(frozen=True)
class OptionSpec:
    """
    How a setting appears on the command line.

    @ivar short: its one-letter flag, or L{None}.
    @ivar help: its line in C{--help}.
    @ivar check: see L{Check}.
    @ivar show: the default as one would type it (C{--help} shows it).
    @ivar name: the option's name, if not the field's.
    """

    short: str | None
    help: str
    check: Check
    show: Callable[[Any], str] = str
    name: str | None = None


def setting(
    default: object,
    short: str | None,
    help: str,
    check: Check,
    show: Callable[[Any], str] = str,
    name: str | None = None,
) -> Any:
    """
    A settings field: its default, and its L{OptionSpec}.
    """
    spec = OptionSpec(short, help, check, show, name)
    return field(default=default, metadata={"option": spec})


def showSeconds(seconds: float) -> str:
    """
    Seconds as one would type them (C{10}, C{0.5}).
    """
    return f"{seconds:g}"


_S = TypeVar("_S", bound="Settings")


class Settings:
    """
    A frozen dataclass of L{setting} fields, and the options they make.
    """

    @classmethod
    def optParameters(cls) -> list[list[Any]]:
        """
        The L{twisted.python.usage.Options} C{optParameters}: one C{[name, short, default,
        help]} per field, in order.
        """
        return [
            [
                spec.name or f.name,
                spec.short,
                None if f.default is None else spec.show(f.default),
                spec.help,
            ]
            for f, spec in _specs(cls)
        ]

    @classmethod
    def fromOptions(cls: type[_S], options: Options, **others: Any) -> _S:
        """
        Check and convert each setting's value in C{options} (in place, in
        field order), and build the settings from them and C{others} (the
        fields that are not plain options).

        @raise SettingError: naming the first option with a bad value.
        """
        values: dict[str, Any] = dict(others)
        for f, spec in _specs(cls):
            name = spec.name or f.name
            spec.check(options, name)
            values[f.name] = options[name]
        return cls(**values)

    def toArgv(self) -> list[str]:
        """
        The command-line options that give these settings (the ones that
        are plain options), each as C{--name value}.
        """
        return _argv(self)


def _argv(settings: Settings) -> list[str]:
    argv: list[str] = []
    for f, spec in _specs(type(settings)):
        value = getattr(settings, f.name)
        if value is not None:
            argv += [f"--{spec.name or f.name}", spec.show(value)]
    return argv


def _specs(cls: type[Settings]) -> list[tuple[Any, OptionSpec]]:
    return [(f, f.metadata["option"]) for f in fields(cls) if "option" in f.metadata]  # type: ignore[arg-type]


_WHOLE = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def wholeNumber(text: object) -> int:
    """
    The whole number C{text} spells in ASCII digits (surrounding blanks
    allowed).  Python's C{int} also takes other scripts' digits and C{1_000};
    an option does not.

    @raise ValueError: for anything else.
    """
    stripped = str(text).strip()
    if not _WHOLE.fullmatch(stripped):
        raise ValueError(f"not a whole number: {text!r}")
    return int(stripped, 10)


def decimalNumber(text: object) -> float:
    """
    The number C{text} spells in ASCII (C{2}, C{0.5}, C{1e3}); not C{inf},
    C{nan}, C{1_0} or other scripts' digits, which C{float} takes.

    @raise ValueError: for anything else.
    """
    stripped = str(text).strip()
    if not _DECIMAL.fullmatch(stripped):
        raise ValueError(f"not a number: {text!r}")
    return float(stripped)


def checkWholeNumber(options: Options, name: str, minimum: int = 0) -> None:
    """
    Replace C{options[name]} with the whole number it spells.

    @raise SettingError: naming the option, when the value is not a whole
        number or is below C{minimum}.
    """
    raw = options[name]
    try:
        value = wholeNumber(raw)
    except ValueError:
        raise SettingError(f"--{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise SettingError(f"--{name} must be at least {minimum}, not {raw!r}")
    options[name] = value


def checkSeconds(options: Options, name: str, allowZero: bool = True) -> None:
    """
    Replace C{options[name]} with the number of seconds it spells.

    @raise SettingError: naming the option, when the value is not a
        finite number, is negative, or is zero where zero is not allowed.
    """
    raw = options[name]
    try:
        value = decimalNumber(raw)
    except ValueError:
        raise SettingError(f"--{name} must be a number of seconds, not {raw!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allowZero):
        least = "0 or more" if allowZero else "more than 0"
        raise SettingError(f"--{name} must be {least} seconds, not {raw!r}")
    options[name] = value
