"""
Text log output for twistd: the same lines as Twisted's own text log, made
several times faster, for a server that logs every chunk it receives::

    twistd -n --logger=uppercase.textlog.stdout uppercase

C{twistd uppercase} and C{twistd uppercase-client} use it by default
whenever twistd would write its own text log, to standard output or to a
file (no C{--syslog} or C{--logger}); see L{uppercase.cli.options.preferFastTextLog}.
Log files are Twisted's L{LogFile} (rotated at 1 MB, as twistd's), and
L{reopenLogFiles} serves C{SIGUSR1}.

Twisted's L{twisted.logger.textFileLogObserver} spends most of an event's cost on two
things: formatting the timestamp (a timezone computed and C{strftime} called
for every event) and formatting the message with C{string.Formatter}, in
Python.  L{ClassicTextFormat} formats the timestamp once per second (its
resolution) and formats plain messages with C{str.format_map}, which gives
the same text for any format without Twisted's C{{callable()}} fields.
Anything else (failures with tracebacks, C{log_system}, calls, events that
do not format) goes through Twisted's own L{formatEventAsClassicLogText}.
Lines are flushed within L{FLUSH_DELAY} seconds rather than one by one
(L{BufferedFileLogObserver}); warnings and worse at once.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import IO, Any, Callable

from twisted.logger import (
    ILogObserver,
    LogEvent,
    LogLevel,
    formatEventAsClassicLogText,
    formatTime,
)
from twisted.python.compat import ioType
from twisted.python.logfile import LogFile
from zope.interface import implementer

__all__ = [
    "BufferedFileLogObserver",
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


FLUSH_DELAY = 0.1
"""Seconds a line may wait in the buffer before it is written out."""


@implementer(ILogObserver)
class BufferedFileLogObserver:
    """
    Like L{twisted.logger.FileLogObserver}, but flushing at most every
    L{FLUSH_DELAY} seconds instead of after every line: a server that logs
    every chunk it receives spends a system call per line otherwise
    (about 1 microsecond of the 5 a chunk's event cost, measured).

    Lines reach the file within L{FLUSH_DELAY} seconds; at once for warnings
    and worse, and while the reactor is not running (start-up, shutdown);
    and when the reactor stops and when the process exits, so that none is
    lost on a clean stop.
    """

    def __init__(
        self,
        outFile: IO[Any],
        formatEvent: Callable[[LogEvent], str | None],
        reactor: Any = None,
    ) -> None:
        self._outFile = outFile
        self._reactor = reactor
        self._formatEvent = formatEvent
        # A bytes file gets UTF-8, as FileLogObserver gives it.
        self._encoding = "utf-8" if ioType(outFile) is not str else None
        self._pending: Any = None
        self._hooked = False
        atexit.register(self.flush)

    def __call__(self, event: LogEvent) -> None:
        text = self._formatEvent(event)
        if not text:
            return
        self._outFile.write(text.encode(self._encoding) if self._encoding else text)
        level = event.get("log_level")
        if level is not None and level >= LogLevel.warn:
            self.flush()
            return
        if self._pending is None:
            self._schedule()

    def _schedule(self) -> None:
        # The reactor twistd runs; never imported from here, which would
        # install one.
        reactor = self._reactor or sys.modules.get("twisted.internet.reactor")
        if reactor is None or not getattr(reactor, "running", False):
            self.flush()
            return
        if not self._hooked:
            self._hooked = True
            reactor.addSystemEventTrigger("after", "shutdown", self.flush)
        self._pending = reactor.callLater(FLUSH_DELAY, self.flush)

    def flush(self) -> None:
        """
        Write out what is buffered now.
        """
        pending, self._pending = self._pending, None
        if pending is not None and pending.active():
            pending.cancel()
        try:
            self._outFile.flush()
        except (OSError, ValueError):
            pass  # A closed file at exit: nothing more to do.


def textLogObserver(outFile: IO[Any]) -> ILogObserver:
    """
    Like L{twisted.logger.textFileLogObserver}: an observer writing each
    event to C{outFile} as a line of text (flushed within L{FLUSH_DELAY}
    seconds, see L{BufferedFileLogObserver}).
    """
    return BufferedFileLogObserver(outFile, ClassicTextFormat())


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
    # Only a worker reads its label: every other run of twistd loads this
    # module for its observers, and needs nothing of the workers.
    from uppercase.workers.worker import WorkerSpec

    spec = WorkerSpec.fromEnvironment()
    prefix = f"[worker {spec.label}] " if spec is not None else ""
    return BufferedFileLogObserver(sys.stdout, ClassicTextFormat(prefix))


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
    try:
        opened = _LogFilePath(_configuredPath)
    except OSError as e:
        # Called by twistd as it starts: one line, and a non-zero exit.
        program = os.path.basename(sys.argv[0]) if sys.argv else "twistd"
        reason = e.strerror or str(e)
        message = f"{program}: cannot open the log file {_configuredPath!r}: {reason}"
        raise SystemExit(message) from None
    _openLogFiles.append(opened)
    return textLogObserver(opened.file)


def reopenLogFiles() -> list[str]:
    """
    Reopen or rotate every file opened by L{logfile}.

    @return: what was done to each, for the log (empty if none is open).
    """
    return [opened.reopenOrRotate() for opened in _openLogFiles]
