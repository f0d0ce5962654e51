"""
Options from the environment: every long option of a command is also the
variable C{UPPERCASE_<OPTION>}, its dashes as underscores (C{--max-connections}
is C{UPPERCASE_MAX_CONNECTIONS}), as a container is configured.

The variables are derived from the options class itself (its flags, its
parameters, its C{opt_} methods), so a new option gets its variable with
nothing to add here.  The rules:

  - the command line wins: a variable is read only for an option the command
    line does not give;
  - a flag takes C{1}, C{true}, C{yes}, C{0}, C{false} or C{no} (any case);
  - an option that may be given several times (its value a list, as
    C{--listen}) takes several values separated by blanks (spaces, tabs,
    newlines), which no endpoint string needs: a blank inside one value is
    written C{\\ }, the endpoint strings' own escape;
  - a variable set to nothing (or blanks) is not set;
  - a bad value is one usage error naming the variable, not the option.
"""

from __future__ import annotations

import getopt
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from twisted.python import usage

__all__ = [
    "FALSE",
    "NOT_FROM_ENVIRONMENT",
    "PREFIX",
    "TRUE",
    "Variable",
    "environmentArguments",
    "splitValues",
    "variables",
]

PREFIX = "UPPERCASE_"
"""What every variable's name starts with."""

TRUE = ("1", "true", "yes")
FALSE = ("0", "false", "no")
"""What a flag's variable may be (in any case)."""

NOT_FROM_ENVIRONMENT = frozenset({"help", "version"})
"""Options that print and exit: no variable."""

FLAG, VALUE, VALUES = "flag", "value", "values"


@dataclass(frozen=True)
class Variable:
    """
    One option's variable.

    @ivar name: the variable (C{UPPERCASE_MAX_CONNECTIONS}).
    @ivar option: the option's long name (C{max-connections}).
    @ivar kind: C{"flag"}, C{"value"}, or C{"values"} (a repeatable option).
    """

    name: str
    option: str
    kind: str

    def arguments(self, text: str) -> list[str]:
        """
        The command-line arguments C{text}, the variable's value, stands
        for (none for an unset flag).

        @raise usage.UsageError: naming the variable, for a flag that is
            not one of L{TRUE} or L{FALSE}.
        """
        if self.kind == FLAG:
            word = text.strip().lower()
            if word in TRUE:
                return [f"--{self.option}"]
            if word in FALSE:
                return []
            raise usage.UsageError(
                f"{self.name} must be {', '.join(TRUE + FALSE[:-1])} or {FALSE[-1]}, not {text!r}"
            )
        if self.kind == VALUES:
            return [f"--{self.option}={value}" for value in splitValues(text)]
        return [f"--{self.option}={text.strip()}"]


def variables(options: usage.Options, prefix: str = PREFIX) -> list[Variable]:
    """
    The variable of each long option of C{options} (an instance), in the
    order C{--help} lists them; none for L{NOT_FROM_ENVIRONMENT}, nor for
    an option's other spellings (C{-l} for C{--listen}).
    """
    found = []
    for declared in options.longOpt:
        option = declared.rstrip("=")
        if option in NOT_FROM_ENVIRONMENT or options.synonyms.get(option, option) != option:
            continue
        if not declared.endswith("="):
            kind = FLAG
        elif isinstance(options.get(option), list):
            kind = VALUES
        else:
            kind = VALUE
        found.append(Variable(prefix + option.upper().replace("-", "_"), option, kind))
    return found


def splitValues(text: str) -> list[str]:
    """
    The values in C{text} separated by blanks; a backslash keeps the
    character after it (a blank included) in the value, and stays there for
    the endpoint parser, which reads it as the same escape.
    """
    values: list[str] = []
    current = ""
    escaped = False
    for character in text:
        if escaped:
            current += character
            escaped = False
        elif character == "\\":
            current += character
            escaped = True
        elif character.isspace():
            if current:
                values.append(current)
            current = ""
        else:
            current += character
    if current:
        values.append(current)
    return values


def _givenOn(options: usage.Options, argv: Sequence[str]) -> set[str] | None:
    """
    The options (their long names) C{argv} gives, or L{None} when it does
    not parse (then the parse that follows says why).
    """
    try:
        given, _ = getopt.getopt(list(argv), options.shortOpt, options.longOpt)
    except getopt.error:
        return None
    names = set()
    for option, _ in given:
        bare = option[2:] if option.startswith("--") else option[1:]
        names.add(options.synonyms.get(bare, bare))
    return names


def environmentArguments(
    options: usage.Options,
    environ: Mapping[str, str],
    argv: Sequence[str],
    check: Callable[[list[str]], None],
    prefix: str = PREFIX,
) -> list[str]:
    """
    The command-line arguments the environment gives: to be put before
    C{argv}, for the options C{argv} does not give.

    @param check: parses one variable's arguments alone (a fresh options
        instance that reads no environment), raising L{usage.UsageError}
        for a bad value; its message, which names the option as
        C{--option}, is said again naming the variable.
    @raise usage.UsageError: naming the variable with a bad value.
    """
    given = _givenOn(options, argv)
    if given is None:
        return []
    arguments: list[str] = []
    for variable in variables(options, prefix):
        text = environ.get(variable.name, "")
        if variable.option in given or not text.strip():
            continue
        these = variable.arguments(text)
        try:
            check(these)
        except usage.UsageError as e:
            message = str(e)
            named = f"--{variable.option}"
            if named in message:
                message = message.replace(named, variable.name)
            else:
                message = f"{variable.name}={text!r}: {message}"
            raise usage.UsageError(message) from None
        arguments += these
    return arguments
