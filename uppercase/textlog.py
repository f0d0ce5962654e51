"""
Text log output for twistd: the same lines as Twisted's own text log, made
several times faster, for a server that logs every chunk it receives.

    twistd -n --logger=uppercase.textlog.stdout uppercase

C{twistd uppercase} and C{twistd uppercase-client} use it by default
whenever twistd would write its own text log, to standard output or to a
file (no C{--syslog} or C{--logger}); see L{_options.preferFastTextLog}.
Log files are Twisted's L{LogFile} (rotated at 1 MB, as twistd's), and
L{reopenLogFiles} serves C{SIGUSR1}.

Twisted's L{textFileLogObserver} spends most of an event's cost on two
things: formatting the timestamp (a timezone computed and C{strftime} called
for every event) and formatting the message with L{string.Formatter}, in
Python.  L{ClassicTextFormat} formats the timestamp once per second (its
resolution) and formats plain messages with C{str.format_map}, which gives
the same text for any format without Twisted's C{{callable()}} fields.
Anything else (failures with tracebacks, C{log_system}, calls, events that
do not format) goes through Twisted's own L{formatEventAsClassicLogText}.
Each line is written and flushed as it comes, as Twisted does.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any

from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    LogEvent,
    formatEventAsClassicLogText,
    formatTime,
)
from twisted.python.logfile import LogFile

__all__ = [
    "ClassicTextFormat",
    "logfile",
    "reopenLogFiles",
    "stdout",
    "textLogObserver",
    "useLogFile",
    "worker",
]

ROUNDS_UP = 1 - 1e-6
"""A fraction of a second above which L{formatTime} may round up to the
next second (it formats a microsecond-rounded time)."""


RAW = "uppercase_raw"
"""An event with this key is lines already formatted (a worker's, relayed by
its supervisor): they are written as they are."""


class ClassicTextFormat:
    """
    Format events exactly as L{formatEventAsClassicLogText} does:
    C{"{timestamp} [{namespace}#{level}] {message}\\n"}, or L{None} for an
    event with no text; with C{prefix}, that goes after the timestamp (a
    worker's C{"[worker 2] "}).  An event carrying L{RAW} is written as it
    is.
    """

    def __init__(self, prefix: str = "") -> None:
        self._second: float | None = None
        self._stamp = ""
        self._prefix = prefix

    def formatTime(self, when: float | None) -> str:
        """
        L{formatTime}, computed once per second of C{when}.
        """
        if when is None:
            return formatTime(when)
        second = when // 1
        if when - second > ROUNDS_UP:
            # datetime rounds to the microsecond: this is the next second.
            return formatTime(when)
        if second != self._second:
            self._stamp = formatTime(when)
            self._second = second
        return self._stamp

    def __call__(self, event: LogEvent) -> str | None:
        raw = event.get(RAW)
        if raw is not None:
            return str(raw)
        line = self._plainLine(event)
        if line is None:
            line = formatEventAsClassicLogText(event, formatTime=self.formatTime)
            if line and self._prefix:
                stamp, rest = line.split(" ", 1)
                line = f"{stamp} {self._prefix}{rest}"
        return line or None

    def _plainLine(self, event: LogEvent) -> str | None:
        """
        The line for a plain event (a format without calls, a level, no
        system or failure), C{""} when its message is empty, or L{None} for
        Twisted to format.
        """
        fmt = event.get("log_format")
        level = event.get("log_level")
        if (
            type(fmt) is not str
            or "(" in fmt
            or level is None
            or event.get("log_system") is not None
            or "log_failure" in event
            or "log_flattened" in event
        ):
            return None
        try:
            message = fmt.format_map(event)
        except Exception:
            return None  # Twisted says it could not format it, its way.
        if not message:
            return ""
        stamp = self.formatTime(event.get("log_time"))
        line = f"{stamp} {self._prefix}[{event.get('log_namespace', '-')}#{level.name}] {message}"
        return line.replace("\n", "\n\t") + "\n"


def textLogObserver(outFile: IO[Any]) -> ILogObserver:
    """
    Like L{twisted.logger.textFileLogObserver}: an observer writing each
    event to C{outFile} as a line of text, and flushing it.
    """
    return FileLogObserver(outFile, ClassicTextFormat())


def stdout() -> ILogObserver:
    """
    An observer writing text lines to standard output (a log observer
    factory for C{twistd --logger}).
    """
    return textLogObserver(sys.stdout)


def worker() -> ILogObserver:
    """
    For a worker of C{--workers N}: text lines to standard output (its
    supervisor relays them), each saying which worker wrote it.
    """
    from ._worker import WorkerSpec

    spec = WorkerSpec.fromEnvironment()
    prefix = f"[worker {spec.worker}] " if spec is not None else ""
    return FileLogObserver(sys.stdout, ClassicTextFormat(prefix))


class _LogFilePath:
    """
    A L{LogFile} and the identity of the file it last opened at its path,
    to tell whether something else (logrotate) moved it away since.
    """

    def __init__(self, path: str) -> None:
        self.file = LogFile.fromFullPath(path)
        self._identity = self._current()

    def _current(self) -> tuple[int, int] | None:
        try:
            status = os.stat(self.file.path)
        except OSError:
            return None
        return status.st_dev, status.st_ino

    def reopenOrRotate(self) -> str:
        """
        Reopen the file if it was moved or removed (logrotate's convention
        for C{SIGUSR1}); otherwise rotate it as twistd does (C{PATH} becomes
        C{PATH.1}).

        @return: what was done, for the log.
        """
        if self._current() != self._identity:
            self.file.reopen()
            done = "reopened"
        else:
            self.file.rotate()
            done = "rotated"
        self._identity = self._current()
        return f"{done} {self.file.path}"


_configuredPath: str | None = None
_openLogFiles: list[_LogFilePath] = []


def useLogFile(path: str) -> None:
    """
    Set the path L{logfile} opens (the command-line layer calls this with
    twistd's C{--logfile} before twistd calls L{logfile}).
    """
    global _configuredPath
    _configuredPath = path


def logfile() -> ILogObserver:
    """
    An observer writing text lines to the file set by L{useLogFile} (a log
    observer factory for C{twistd --logger}); C{SIGUSR1} reopens or rotates
    it (L{reopenLogFiles}).
    """
    if _configuredPath is None:
        raise RuntimeError("uppercase.textlog.logfile needs useLogFile(path) first")
    opened = _LogFilePath(_configuredPath)
    _openLogFiles.append(opened)
    return textLogObserver(opened.file)


def reopenLogFiles() -> list[str]:
    """
    Reopen or rotate every file opened by L{logfile}.

    @return: what was done to each, for the log (empty if none is open).
    """
    return [opened.reopenOrRotate() for opened in _openLogFiles]
