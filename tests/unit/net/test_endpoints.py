"""
The one endpoint-string tokenizer: fields, escapes, keyword arguments, and
the brackets people type around IPv6 addresses.
"""

from __future__ import annotations

import importlib.util

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.endpoints import clientFromString, serverFromString
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from uppercase.net.endpoints import (
    arguments,
    escapeBrackets,
    fields,
    hasEmptyField,
    parseProblem,
    unescape,
)

text = st.text(alphabet=st.sampled_from("ab:=\\[]1 é"), max_size=30)
values = st.text(alphabet=st.sampled_from("ab:=\\1 é"), max_size=8)


def escape(value: str) -> str:
    """
    C{value} as an endpoint string writes it: backslash, colon and equals
    escaped.
    """
    return "".join("\\" + c if c in "\\:=" else c for c in value)


class FieldsTests(SynchronousTestCase):
    """
    L{fields} splits at unescaped colons only, and keeps the text as typed.
    """

    @given(text)
    def test_joinGivesBack(self, description: str) -> None:
        """
        The fields, joined with colons, are the string again.
        """
        self.assertEqual(":".join(fields(description)), description)

    def test_escapedColonStaysInItsField(self) -> None:
        """
        C{\\:} is part of a field; a colon after an escaped backslash ends one.
        """
        self.assertEqual(
            fields("tcp6:interface=\\:\\:1:backlog=3"),
            ["tcp6", "interface=\\:\\:1", "backlog=3"],
        )
        self.assertEqual(fields("unix:a\\\\:b"), ["unix", "a\\\\", "b"])


class ArgumentsTests(SynchronousTestCase):
    """
    L{arguments} gives what Twisted's parser gives an endpoint type.
    """

    @given(
        st.lists(values, min_size=1, max_size=4),
        st.dictionaries(values.filter(bool), values, max_size=3),
    )
    def test_escapedArgumentsComeBack(self, args: list[str], kwargs: dict[str, str]) -> None:
        """
        Any positional and keyword values, escaped and joined, come back
        exactly.
        """
        description = ":".join(
            [escape(a) for a in args] + [f"{escape(k)}={escape(v)}" for k, v in kwargs.items()]
        )
        self.assertEqual(arguments(description), (args, kwargs))

    def test_onlyTheFirstEqualsSeparates(self) -> None:
        """
        After a keyword's C{=}, another C{=} is part of the value.
        """
        self.assertEqual(arguments("tls:host=a=b:9527"), (["tls", "9527"], {"host": "a=b"}))

    def test_loneBackslashAtTheEnd(self) -> None:
        """
        A lone backslash at the end is dropped, as Twisted drops it.
        """
        self.assertEqual(unescape("ab\\"), "ab")


class EmptyFieldTests(SynchronousTestCase):
    """
    L{hasEmptyField} finds two unescaped colons side by side.
    """

    def test_examples(self) -> None:
        """
        An unbracketed IPv6 address has one; escaped colons, a trailing colon
        and a leading one do not.
        """
        self.assertTrue(hasEmptyField("tcp:::1:9527"))
        self.assertTrue(hasEmptyField("tcp:host::9527"))
        self.assertFalse(hasEmptyField("tcp:host=\\:\\:1:9527"))
        self.assertFalse(hasEmptyField("tcp:host:"))
        self.assertFalse(hasEmptyField(":tcp"))


class EscapeBracketsTests(SynchronousTestCase):
    """
    L{escapeBrackets} writes a bracketed IPv6 address as Twisted reads it.
    """

    def test_bracketsAtAnArgument(self) -> None:
        """
        Brackets that start an argument, positional or keyword, become escapes;
        others are left as they are.
        """
        self.assertEqual(escapeBrackets("tcp:[::1]:9527"), "tcp:\\:\\:1:9527")
        self.assertEqual(escapeBrackets("tcp:host=[fe80::1]:port=1"), "tcp:host=fe80\\:\\:1:port=1")
        self.assertEqual(escapeBrackets("unix:/a[::1]"), "unix:/a[::1]")

    @given(text)
    def test_bracketFreeUntouched(self, description: str) -> None:
        """
        A string with no bracket is left exactly as it is.
        """
        description = description.replace("[", "")
        self.assertEqual(escapeBrackets(description), description)


class ParseProblemTests(SynchronousTestCase):
    """
    L{parseProblem} says what Twisted's endpoint parsers raise in a user's
    words, never as a Python error.
    """

    def problem(self, description: str, server: bool = True) -> str:
        """
        What L{parseProblem} says of what Twisted's C{serverFromString} (or
        C{clientFromString}) raises for C{description}.
        """
        parse = serverFromString if server else clientFromString
        try:
            parse(Clock(), description)
        except Exception as e:
            return parseProblem(e, "tcp:, unix:")
        raise AssertionError(f"{description!r} parsed")

    def test_userWords(self) -> None:
        """
        A port or backlog that is not a number, a missing one, an option the
        endpoint does not take, a missing host's port, an unknown or empty
        type, a mode that is not octal, a field given twice, and (where
        Twisted has TLS: pyOpenSSL) a missing or unreadable key file each
        get their own line.
        """
        cases = [
            ("tcp:abc", True, "'abc' is not a whole number"),
            (
                "tcp:1:backlog=x",
                True,
                "'x' is not a whole number",
            ),
            ("tcp:", True, "a number is missing"),
            ("unix:/s:mode=abc", True, "'abc' is not an octal number (a mode such as 0660)"),
            ("tcp:1:port=2", True, "port is given twice"),
            (
                "tcp:1:interface=::1",
                True,
                "interface is given twice (an IPv6 address needs escaped colons: interface=\\:\\:1)",
            ),
            ("tcp:1:bogus=1", True, "it has no option 'bogus'"),
            ("tcp:host", False, "the port is missing"),
            ("", True, "it is empty"),
            ("foo:1", True, "unknown endpoint type 'foo' (it takes tcp:, unix:)"),
        ]
        if importlib.util.find_spec("OpenSSL") is not None:
            cases.append(
                (
                    "ssl:1:privateKey=/nonexistent/key.pem:certKey=/nonexistent/key.pem",
                    True,
                    "cannot read /nonexistent/key.pem: No such file or directory",
                ),
            )
            cases.append(
                (
                    f"ssl:1:privateKey={__file__}:certKey={__file__}",
                    True,
                    "a certificate or key file is not one OpenSSL can read (PEM)",
                )
            )
        for description, server, expected in cases:
            self.assertEqual(self.problem(description, server), expected, description)

    def test_typeMissingOrEmpty(self) -> None:
        """
        Given the endpoint string, one without a type (C{:9527}) is told
        apart from an empty one.
        """
        for description, expected in (
            (":9527", "the endpoint type is missing (such as tcp:9527)"),
            ("", "it is empty"),
        ):
            try:
                serverFromString(Clock(), description)
            except ValueError as e:
                self.assertEqual(parseProblem(e, description=description), expected)
            else:
                raise AssertionError(f"{description!r} parsed")

    def test_otherwiseAsTwistedSays(self) -> None:
        """
        An unknown type is named (without a list when none is given); any
        other error is said as it says it, or by its type's name when it
        says nothing.
        """
        self.assertEqual(parseProblem(ValueError("a port out of range")), "a port out of range")
        self.assertEqual(parseProblem(KeyError()), "KeyError")
        self.assertEqual(
            parseProblem(ValueError("Unknown endpoint type: 'x'")), "unknown endpoint type 'x'"
        )
