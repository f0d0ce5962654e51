"""Checking option values, and reporting bad ones in one line."""

from __future__ import annotations

import os
import platform
import signal
import sys
from contextlib import contextmanager
from typing import Iterator, NoReturn, Sequence

from twisted.python import usage

from uppercase import __version__, textlog
from uppercase._settings import SettingError
from uppercase.client._report import silenceOutput

MODULE_COMMAND = "python -m uppercase"
"""How L{uppercase.__main__} names itself (in C{sys.argv[0]})."""

RUNNERS = ("twistd", "twist")
"""Twisted's runners, which take the plugin's name as a sub-command."""


def commandName(tapname: str) -> str:
    """
    How the person typed the command that runs plugin C{tapname}: C{twist
    uppercase} under Twisted's C{twist}, C{python -m uppercase} for the
    server run that way, C{twistd uppercase} otherwise.
    """
    program = os.path.basename(sys.argv[0]) if sys.argv else ""
    if program == MODULE_COMMAND and tapname == "uppercase":
        return MODULE_COMMAND
    runner = program if program in RUNNERS else "twistd"
    return f"{runner} {tapname}"


def versionLine() -> str:
    """
    C{uppercase X.Y.Z (Twisted A.B.C, CPython 3.11.7)}: what C{--version}
    prints.
    """
    from twisted import __version__ as twistedVersion

    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"uppercase {__version__} (Twisted {twistedVersion}, {python})"


EXIT_OUTPUT_CLOSED = 128 + signal.SIGPIPE
"""The exit status when standard output is a closed pipe (C{| head -1}): 141,
what a shell shows for a command that SIGPIPE ended, as it ends C{cat}."""

EXIT_OUTPUT_FAILED = 1
"""The exit status when standard output cannot be written otherwise (a full
disk)."""


def outputFailure(error: OSError) -> tuple[int, str | None]:
    """
    The exit status and the line to print (without the command's name) when
    writing the output failed with C{error}: a closed pipe ends quietly with
    L{EXIT_OUTPUT_CLOSED}, as C{cat} ends; anything else is
    C{cannot write the output: No space left on device} and
    L{EXIT_OUTPUT_FAILED}.
    """
    if isinstance(error, BrokenPipeError):
        return EXIT_OUTPUT_CLOSED, None
    reason = error.strerror or str(error)
    return EXIT_OUTPUT_FAILED, f"cannot write the output: {reason}"


def printAndExit(text: str, command: str) -> NoReturn:
    """
    Print C{text} (C{--help}, C{--version}) and exit 0; if standard output
    cannot take it, exit as L{outputFailure} says, without a traceback.
    """
    try:
        print(text)
        sys.stdout.flush()
    except OSError as e:
        silenceOutput()
        status, line = outputFailure(e)
        if line is not None:
            sys.stderr.write(f"{command}: {line}\n")
        raise SystemExit(status) from None
    raise SystemExit(0)


@contextmanager
def usageErrors() -> Iterator[None]:
    """
    Report a setting's bad value (L{SettingError}, which the library raises)
    as the usage error it is on the command line.
    """
    try:
        yield
    except SettingError as e:
        raise usage.UsageError(str(e)) from None


def oneLineErrors(options: type[usage.Options], tapname: str) -> type[usage.Options]:
    """
    Make a subclass of C{options} that reports a usage error as one line on
    standard error and exits with status 2, instead of raising it, and whose
    C{--version} prints uppercase's version (L{usage.Options} prints
    Twisted's).

    C{twistd} prints its whole help text before a plugin's usage error; a
    person who mistyped one value wants to read the one line that says which.
    The line names the command as it was typed (L{commandName}), and so
    does the help's C{Usage:} line (Twisted's names C{twistd} under
    C{python -m uppercase}, and C{twist [options] plugin [plugin_options]}
    under C{twist}).  C{--help} and C{--version} into a closed pipe end
    quietly (L{printAndExit}).
    """

    class OneLineErrors(options):  # type: ignore[valid-type,misc]
        def parseOptions(self, options: Sequence[str] | None = None) -> None:
            try:
                super().parseOptions(options)
            except usage.UsageError as e:
                command = commandName(tapname)
                sys.stderr.write(f"{command}: {e}\nTry '{command} --help' for help.\n")
                raise SystemExit(2) from None

        def getSynopsis(self) -> str:
            synopsis: str = super().getSynopsis()
            command = commandName(tapname)
            if self.parent is None or command.startswith("twistd "):
                return synopsis
            own = getattr(self, "synopsis", "[options]").rstrip()
            return f"Usage: {command} {own}"

        def opt_help(self) -> NoReturn:
            """
            Display this help and exit.
            """
            printAndExit(str(self), commandName(tapname))

        def opt_version(self) -> NoReturn:
            """
            Display uppercase's version and exit.
            """
            printAndExit(versionLine(), commandName(tapname))

    OneLineErrors.__name__ = options.__name__
    OneLineErrors.__qualname__ = options.__qualname__
    OneLineErrors.__doc__ = options.__doc__
    return OneLineErrors


FAST_TEXT_LOG = "uppercase.textlog.stdout"
FAST_LOG_FILE = "uppercase.textlog.logfile"
TWISTD_LOG_FILE = "twistd.log"
"""Where twistd logs by default in daemon mode."""


def preferFastTextLog(options: usage.Options) -> None:
    """
    Have C{twistd} log through L{uppercase.textlog} wherever it would have
    written its own text log: to standard output in the foreground (C{-n}
    without C{--logfile}, or C{--logfile=-}), or to a file (C{--logfile
    PATH}, or C{twistd.log} in daemon mode).  Not with C{--syslog} or
    C{--logger}.  The lines are the same; they cost a fraction as much, and
    a log file can be reopened on C{SIGUSR1}.

    Called from the C{postOptions} of a plugin's options, which C{twistd}
    parses before it reads its own; C{options.parent} is C{twistd}'s.
    Without a parent, or under another runner (C{twist}), nothing changes.
    """
    twistd = getattr(options, "parent", None)
    if twistd is None or "nodaemon" not in twistd:
        return
    if twistd.get("logger") is not None or twistd.get("syslog"):
        return
    path = twistd.get("logfile")
    if path == "-" or (twistd.get("nodaemon") and not path):
        twistd["logger"] = FAST_TEXT_LOG
        return
    textlog.useLogFile(path or TWISTD_LOG_FILE)
    twistd["logger"] = FAST_LOG_FILE


def checkPidFile(options: usage.Options) -> None:
    """
    Check that C{twistd} will be able to write its pid file (C{--pidfile},
    C{twistd.pid} by default), so that a path it cannot write is one line
    now rather than a traceback from C{twistd} at start-up.  Nothing is
    created.  Skipped without C{twistd} as the parent, with no pid file, or
    with C{--chroot} (the path is then inside the new root).

    @raise usage.UsageError: saying why the pid file cannot be written.
    """
    twistd = getattr(options, "parent", None)
    if twistd is None or "pidfile" not in twistd:
        return
    path = twistd.get("pidfile")
    if not path or twistd.get("chroot"):
        return
    full = os.path.abspath(path)
    folder = os.path.dirname(full)
    if os.path.isdir(full):
        problem = "it is a directory"
    elif not os.path.isdir(folder):
        problem = f"no directory {folder}"
    elif not os.access(full if os.path.exists(full) else folder, os.W_OK):
        problem = "permission denied"
    else:
        return
    raise usage.UsageError(f"cannot write the pid file {path!r}: {problem}")
