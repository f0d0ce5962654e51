"""The server's options from the environment (uppercase.cli.environment)."""

from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from uppercase.cli import server as twistdServer
from uppercase.cli.environment import Variable, splitValues, variables
from uppercase.cli.server import ServerOptions
from uppercase.server._settings import DEFAULTS, ServerSettings
from uppercase.workers.worker import WORKER_ENV

SAMPLES = {
    "quiet": "yes",
    "idle-timeout": "7",
    "max-connections": "7",
    "max-per-ip": "7",
    "max-pending-headers": "7",
    "shutdown-timeout": "2.5",
    "workers": "3",
    "metrics": "tcp:0:interface=127.0.0.1",
    "listen": "tcp:0:interface=127.0.0.1",
    "plain": "yes",
    "udp-rate-per-source": "7",
    "udp-bytes-per-source": "70000",
    "udp-rate": "7",
    "fault-seed": "7",
    "fault": "latency,delay=20ms",
    "control": "tcp:0:interface=127.0.0.1",
}
"""A good value of each option that is not its default (a new option needs
one here, and a line in docs/container.md)."""

CONTAINER_DOC = Path(__file__).parents[3] / "docs" / "container.md"


def parse(environ: dict[str, str], *argv: str) -> ServerOptions:
    options = ServerOptions(environ=environ)
    options.parseOptions(list(argv))
    return options


class VariablesTests(SynchronousTestCase):
    """
    Every option of C{twistd uppercase} has its variable.
    """

    def test_everyOption(self) -> None:
        """
        Each setting of L{ServerSettings}, C{--quiet}, C{--plain} and C{--listen} is a
        variable C{UPPERCASE_<OPTION>} with dashes as underscores, and
        C{--help} and C{--version} are none.
        """
        options = [parameter[0] for parameter in ServerSettings.optParameters()]
        expected = {f"UPPERCASE_{o.upper().replace('-', '_')}" for o in options}
        expected |= {"UPPERCASE_QUIET", "UPPERCASE_PLAIN", "UPPERCASE_LISTEN", "UPPERCASE_FAULT"}
        found = variables(ServerOptions(environ={}))
        self.assertEqual({v.name for v in found}, expected)
        self.assertEqual(len(found), len(expected))
        self.assertIn(Variable("UPPERCASE_MAX_CONNECTIONS", "max-connections", "value"), found)
        self.assertIn(Variable("UPPERCASE_QUIET", "quiet", "flag"), found)
        self.assertIn(Variable("UPPERCASE_LISTEN", "listen", "values"), found)

    def test_eachSetsItsOption(self) -> None:
        """
        Each variable alone gives the settings its option gives on the
        command line, which differ from the defaults.
        """
        for variable in variables(ServerOptions(environ={})):
            value = SAMPLES[variable.option]
            argv = [f"--{variable.option}"] if variable.kind == "flag" else [
                f"--{variable.option}={value}"
            ]  # fmt: skip
            fromEnvironment = parse({variable.name: value}).settings
            self.assertEqual(fromEnvironment, parse({}, *argv).settings, variable.name)
            self.assertNotEqual(fromEnvironment, DEFAULTS, variable.name)

    def test_unsetAndEmpty(self) -> None:
        """
        With no variable set, or each set to nothing or blanks, the
        defaults; other variables that start with UPPERCASE_ are not read.
        """
        self.assertEqual(parse({}).settings, DEFAULTS)
        empty = {v.name: "" for v in variables(ServerOptions(environ={}))}
        self.assertEqual(parse(empty).settings, DEFAULTS)
        blank = {name: " \t" for name in empty}
        self.assertEqual(parse(blank).settings, DEFAULTS)
        self.assertEqual(parse({"UPPERCASE_TLS_OPTIONAL": "1"}).settings, DEFAULTS)


class PrecedenceTests(SynchronousTestCase):
    """
    The command line wins over the environment.
    """

    def test_value(self) -> None:
        """
        An option on the command line, however spelled (long, abbreviated,
        with C{=}), wins over its variable; the other variables still count.
        """
        environ = {"UPPERCASE_MAX_CONNECTIONS": "5", "UPPERCASE_MAX_PER_IP": "3"}
        for argv in (["--max-connections", "7"], ["--max-connections=7"], ["--max-conn", "7"]):
            settings = parse(environ, *argv).settings
            self.assertEqual((settings.maxConnections, settings.maxPerIP), (7, 3), argv)

    def test_listen(self) -> None:
        """
        Any C{--listen} or C{-l} on the command line replaces all of
        C{UPPERCASE_LISTEN}'s endpoints; without one, they all count.
        """
        environ = {"UPPERCASE_LISTEN": "tcp:1234 tcp6:1235"}
        self.assertEqual(parse(environ).settings.listen, ("tcp:1234", "tcp6:1235"))
        self.assertEqual(parse(environ, "-l", "tcp:9").settings.listen, ("tcp:9",))
        self.assertEqual(parse(environ, "--listen=tcp:9").settings.listen, ("tcp:9",))

    def test_fault(self) -> None:
        """
        C{UPPERCASE_FAULT} takes several faults separated by blanks, and
        C{UPPERCASE_FAULT_SEED} the seed; any C{--fault} on the command
        line replaces all of the variable's.
        """
        environ = {
            "UPPERCASE_FAULT": "latency,delay=20ms  corrupt,probability=0.5",
            "UPPERCASE_FAULT_SEED": "42",
        }
        settings = parse(environ).settings
        self.assertEqual(
            [fault.describe() for fault in settings.faults],
            ["latency,delay=20ms", "corrupt,probability=0.5"],
        )
        self.assertEqual(settings.faultSeed, 42)
        settings = parse(environ, "--fault", "refuse").settings
        self.assertEqual([fault.describe() for fault in settings.faults], ["refuse"])

    def test_badFault(self) -> None:
        """
        A bad fault in C{UPPERCASE_FAULT} is one line naming the variable,
        the fault and the field.
        """
        error = self.assertRaises(
            usage.UsageError, parse, {"UPPERCASE_FAULT": "refuse latency,delay=abc"}
        )
        self.assertEqual(
            str(error),
            "UPPERCASE_FAULT 'latency,delay=abc': latency: delay must be a duration such as "
            "20ms or 1.5s",
        )

    def test_flag(self) -> None:
        """
        A flag the environment turns off is on when the command line gives
        it; one the environment turns on stays on.
        """
        self.assertFalse(parse({"UPPERCASE_QUIET": "no"}, "--quiet").settings.logData)
        self.assertFalse(parse({"UPPERCASE_QUIET": "no"}, "-q").settings.logData)
        self.assertFalse(parse({"UPPERCASE_QUIET": "1"}).settings.logData)

    def test_notInAWorker(self) -> None:
        """
        A worker of C{--workers} reads no variable: its supervisor gives it
        every option, and one it leaves out on purpose (C{--metrics}) would
        come back from the environment it inherits.
        """
        environ = {WORKER_ENV: "x", "UPPERCASE_METRICS": "tcp:0", "UPPERCASE_QUIET": "yes"}
        options = ServerOptions(environ=environ)
        # Only the environment reading is under test: a worker's spec is
        # read later, from os.environ, where there is none.
        options.parseOptions([])
        self.assertEqual(options.settings, DEFAULTS)


class FlagTests(SynchronousTestCase):
    """
    A flag's variable.
    """

    def test_words(self) -> None:
        """
        1, true and yes turn it on; 0, false and no leave it off; in any
        case, with blanks around.
        """
        for word in ("1", "true", "yes", "TRUE", " Yes\n"):
            self.assertFalse(parse({"UPPERCASE_QUIET": word}).settings.logData, word)
        for word in ("0", "false", "no", "False", " NO "):
            self.assertTrue(parse({"UPPERCASE_QUIET": word}).settings.logData, word)

    def test_otherWords(self) -> None:
        """
        Anything else is a usage error naming the variable and the words it
        takes.
        """
        for word in ("on", "2", "y", "quiet"):
            error = self.assertRaises(usage.UsageError, parse, {"UPPERCASE_QUIET": word})
            self.assertEqual(
                str(error),
                f"UPPERCASE_QUIET must be 1, true, yes, 0, false or no, not {word!r}",
            )


class SeveralValuesTests(SynchronousTestCase):
    """
    A repeatable option's variable takes several values.
    """

    def test_blanks(self) -> None:
        """
        Values are separated by any run of blanks, at either end too.
        """
        self.assertEqual(splitValues(" tcp:1\ttcp6:2\n\n unix:/x "), ["tcp:1", "tcp6:2", "unix:/x"])
        self.assertEqual(splitValues(""), [])

    def test_commaInAValue(self) -> None:
        """
        A comma belongs to its value (a file name may hold one).
        """
        self.assertEqual(splitValues("unix:/run/a,b.sock tcp:1"), ["unix:/run/a,b.sock", "tcp:1"])

    def test_escapedBlank(self) -> None:
        """
        A backslash keeps the blank after it, and stays for the endpoint
        parser, whose escape it is too; so does an escaped colon.
        """
        self.assertEqual(
            splitValues(r"unix:/tmp/a\ b.sock tcp:1:interface=\:\:1"),
            [r"unix:/tmp/a\ b.sock", r"tcp:1:interface=\:\:1"],
        )
        settings = parse({"UPPERCASE_LISTEN": r"unix:/tmp/a\ b.sock"}).settings
        self.assertEqual(settings.listen, (r"unix:/tmp/a\ b.sock",))


class BadValueTests(SynchronousTestCase):
    """
    A bad value is one usage error naming the variable.
    """

    def test_everyVariable(self) -> None:
        """
        For each variable, a bad value is a usage error whose message starts
        with the variable's name and does not name the option.
        """
        for variable in variables(ServerOptions(environ={})):
            error = self.assertRaises(usage.UsageError, parse, {variable.name: "bad:"})
            message = str(error)
            self.assertTrue(message.startswith(f"{variable.name} "), message)
            self.assertNotIn(f"--{variable.option}", message)
            self.assertEqual(len(message.splitlines()), 1, message)

    def test_says(self) -> None:
        """
        The message says what the option's would, naming the variable.
        """
        error = self.assertRaises(usage.UsageError, parse, {"UPPERCASE_MAX_CONNECTIONS": "x"})
        self.assertEqual(str(error), "UPPERCASE_MAX_CONNECTIONS must be a whole number, not 'x'")
        error = self.assertRaises(usage.UsageError, parse, {"UPPERCASE_LISTEN": "tcp:1 nope:"})
        self.assertEqual(
            str(error),
            "UPPERCASE_LISTEN 'nope:' is not a valid endpoint: unknown endpoint type 'nope'"
            " (it takes tcp:, tcp6:, unix:, ssl:, udp:, systemd:, haproxy:)",
        )

    def test_commandLineWinsOverABadValue(self) -> None:
        """
        A bad variable whose option the command line gives is not read.
        """
        settings = parse({"UPPERCASE_WORKERS": "many"}, "--workers", "2").settings
        self.assertEqual(settings.workers, 2)

    def test_oneLineExit2(self) -> None:
        """
        Under the options class twistd uses, a bad variable is one line on
        standard error and exit status 2.
        """
        self.patch(os, "environ", {"UPPERCASE_SHUTDOWN_TIMEOUT": "soon"})
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        self.patch(sys, "argv", ["twistd"])
        error = self.assertRaises(SystemExit, twistdServer.Options().parseOptions, [])
        self.assertEqual(error.code, 2)
        self.assertEqual(
            stderr.getvalue().splitlines()[0],
            "twistd uppercase: UPPERCASE_SHUTDOWN_TIMEOUT must be a number of seconds, not 'soon'",
        )


class DocumentedTests(SynchronousTestCase):
    """
    docs/container.md's table of variables.
    """

    def test_tableMatchesTheOptions(self) -> None:
        """
        The table lists every variable with its option, in C{--help}'s
        order, and nothing else.
        """
        rows = re.findall(
            r"^\| `(UPPERCASE_[A-Z_]+)` \| `--([a-z-]+)` \|", CONTAINER_DOC.read_text(), re.M
        )
        expected = [(v.name, v.option) for v in variables(ServerOptions(environ={}))]
        self.assertEqual(rows, expected)
