"""
Settings defined once: a frozen dataclass whose fields carry their default
and, in their metadata, how they appear on the command line (option name,
short flag, help, how to check and convert the typed text).  The options
classes derive their C{optParameters} from it and build it from what was
parsed; the code that runs takes it, or its defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable, TypeVar

from twisted.python import usage

__all__ = ["Check", "OptionSpec", "Settings", "setting", "showSeconds"]

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
        The L{usage.Options} C{optParameters}: one C{[name, short, default,
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
    def fromOptions(cls: type[_S], options: usage.Options, **others: Any) -> _S:
        """
        Check and convert each setting's value in C{options} (in place, in
        field order), and build the settings from them and C{others} (the
        fields that are not plain options).

        @raise usage.UsageError: naming the first option with a bad value.
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
