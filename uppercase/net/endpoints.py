r"""
Endpoint strings as Twisted reads them, split once, for the server's and the
client's checks alike.

An endpoint string is fields separated by colons (C{tcp:9527:interface=::1}
is written C{tcp:9527:interface=\:\:1}); a backslash escapes the character
after it; a field C{name=value} is a keyword argument (after its first
unescaped C{=}, only a colon ends the value).  Twisted's own parser is
private; this one says the same of every string, and keeps the escapes where
a caller needs to put the string back together.  People type an IPv6
address in brackets (C{tcp:[::1]:9527}); L{escapeBrackets} writes it as
Twisted reads it.
"""

from __future__ import annotations

import re
from typing import Dict, List, Tuple

__all__ = ["arguments", "escapeBrackets", "fields", "hasEmptyField", "parseProblem", "unescape"]


def fields(description: str) -> list[str]:
    """
    C{description} split at its unescaped colons, each field as typed
    (escapes kept): C{":".join(fields(d)) == d}.
    """
    found: list[str] = []
    start = 0
    i = 0
    end = len(description)
    while i < end:
        c = description[i]
        if c == "\\":
            i += 2
            continue
        if c == ":":
            found.append(description[start:i])
            start = i + 1
        i += 1
    found.append(description[start:])
    return found


def unescape(text: str) -> str:
    """
    C{text} with each backslash escape replaced by the character it escapes
    (a lone backslash at the end is dropped, as Twisted drops it).
    """
    if "\\" not in text:
        return text
    out = []
    chars = iter(text)
    for c in chars:
        out.append(next(chars, "") if c == "\\" else c)
    return "".join(out)


def _keyword(field: str) -> int:
    """
    Where C{field}'s first unescaped C{=} is, or -1.
    """
    i = 0
    while i < len(field):
        c = field[i]
        if c == "\\":
            i += 2
            continue
        if c == "=":
            return i
        i += 1
    return -1


def arguments(description: str) -> Tuple[List[str], Dict[str, str]]:
    """
    C{description}'s arguments as Twisted's parser gives them to an endpoint
    type: the positional ones (the type first) and the keyword ones, escapes
    resolved.
    """
    args: list[str] = []
    kwargs: dict[str, str] = {}
    for field in fields(description):
        at = _keyword(field)
        if at == -1:
            args.append(unescape(field))
        else:
            kwargs[unescape(field[:at])] = unescape(field[at + 1 :])
    return args, kwargs


def hasEmptyField(description: str) -> bool:
    """
    Whether two unescaped colons stand side by side inside C{description}
    (C{tcp:::1:9527}): an IPv6 address typed without brackets or escapes.
    """
    return "" in fields(description)[1:-1]


def escapeBrackets(description: str) -> str:
    r"""
    Rewrite each bracketed IPv6 address that starts an argument
    (C{[::1]}) into Twisted's escaped form (C{\:\:1}); leave everything
    else, escapes included, as it is.
    """
    out = []
    atArgument = False
    i = 0
    while i < len(description):
        c = description[i]
        if c == "\\":
            out.append(description[i : i + 2])
            i += 2
            atArgument = False
            continue
        if c == "[" and atArgument:
            end = description.find("]", i)
            inner = description[i + 1 : end]
            if end != -1 and ":" in inner and "\\" not in inner:
                out.append(inner.replace(":", "\\:"))
                i = end + 1
                atArgument = False
                continue
        out.append(c)
        atArgument = c in ":="
        i += 1
    return "".join(out)


_NOT_A_NUMBER = re.compile(r"invalid literal for int\(\) with base (\d+): (.*)$")
_UNKNOWN_OPTION = re.compile(r"unexpected keyword argument '([^']*)'")
_TWICE = re.compile(r"got multiple values for (?:keyword )?argument '([^']*)'")
_MISSING = re.compile(r"missing \d+ required positional arguments?: (.*)$")
_UNKNOWN_TYPE = re.compile(r"^Unknown endpoint type: (.*)$")


def parseProblem(error: BaseException, types: str = "", description: str | None = None) -> str:
    """
    What is wrong with an endpoint string, in a user's words, from what
    Twisted's C{serverFromString} or C{clientFromString} raised for it:
    C{'abc' is not a whole number} rather than C{invalid literal for int()
    with base 10: 'abc'}, C{it has no option 'bogus'} rather than
    C{_parseTCP() got an unexpected keyword argument 'bogus'}.  Anything
    else is said as Twisted says it.

    @param types: the endpoint types the option takes, to name after an
        unknown one (C{tcp:, unix:}).
    @param description: the endpoint string, to tell an empty one from one
        whose type is missing (C{:9527}).
    """
    text = str(error)
    match = _NOT_A_NUMBER.search(text)
    if match:
        base, value = match.groups()
        if value == "''":
            return "a number is missing"
        if base == "8":
            return f"{value} is not an octal number (a mode such as 0660)"
        return f"{value} is not a whole number"
    match = _UNKNOWN_OPTION.search(text)
    if match:
        return f"it has no option {match.group(1)!r}"
    match = _TWICE.search(text)
    if match:
        said = f"{match.group(1)} is given twice"
        if match.group(1) == "interface":
            said += " (an IPv6 address needs escaped colons: interface=\\:\\:1)"
        return said
    match = _MISSING.search(text)
    if match:
        names = match.group(1).replace("'", "").replace(" and ", ", ")
        return f"{names} missing" if "," in names else f"the {names} is missing"
    match = _UNKNOWN_TYPE.search(text)
    if match:
        if match.group(1) == "''":
            if description:
                return f"the endpoint type is missing (such as tcp{description})"
            return "it is empty"
        return f"unknown endpoint type {match.group(1)}" + (f" (it takes {types})" if types else "")
    if isinstance(error, OSError) and error.filename is not None:
        return f"cannot read {error.filename}: {error.strerror or text}"
    if type(error).__module__.startswith("OpenSSL"):
        return "a certificate or key file is not one OpenSSL can read (PEM)"
    if isinstance(error, IndexError):
        return "a field it needs is missing"
    return text or type(error).__name__
