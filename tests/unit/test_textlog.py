"""
The fast text log writes exactly what Twisted's text log writes, and twistd
uses it only where it would have written its own text log to stdout.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.logger import LogLevel, formatEventAsClassicLogText
from twisted.python.failure import Failure
from twisted.scripts.twistd import ServerOptions as TwistdOptions
from twisted.trial.unittest import SynchronousTestCase

from uppercase import jsonlog, textlog
from uppercase.textlog import (
    FLUSH_DELAY,
    BufferedFileLogObserver,
    ClassicTextFormat,
    textLogObserver,
)

T = 1_700_000_000.25


def event(fmt: Any, **fields: Any) -> dict[str, Any]:
    """
    An event as L{twisted.logger.Logger} makes it.
    """
    base = {
        "log_format": fmt,
        "log_level": LogLevel.info,
        "log_namespace": "uppercase.server",
        "log_time": T,
    }
    base.update(fields)
    return base


class Point:
    x = 3

    def name(self) -> str:
        return "point"


def twistedFailure() -> Failure:
    try:
        raise ValueError("broken")
    except ValueError:
        return Failure()


class SameLinesAsTwistedTests(SynchronousTestCase):
    """
    L{ClassicTextFormat} gives the line L{formatEventAsClassicLogText} gives,
    for plain events (formatted its own way) and every other kind (handed to
    Twisted).
    """

    def assertSameLine(self, e: dict[str, Any]) -> None:
        self.assertEqual(ClassicTextFormat()(dict(e)), formatEventAsClassicLogText(dict(e)))

    def assertSameTimestamps(self, times: list[float]) -> None:
        """
        One formatter, fed events at C{times} in that order, stamps each as
        Twisted does.
        """
        fmt = ClassicTextFormat()
        for when in times:
            e = event("at {when}", when=when, log_time=when)
            self.assertEqual(fmt(dict(e)), formatEventAsClassicLogText(dict(e)))

    def test_plainEvents(self) -> None:
        for e in [
            event(
                "Received {size} bytes from {peer}: {data}", size=6, peer="1.2.3.4:5", data="b'hi'"
            ),
            event("{x!r} {x!s} {x:>8} {n:,d} {f:.2f}", x="é\x00", n=1234567, f=2.5),
            event("{p.x} {d[k]} {l[0]}", p=Point(), d={"k": "v"}, l=[7]),
            event("two\nlines and a {tab}", tab="\t"),
            event("no fields at all"),
            event("{{literal braces}}"),
            event("{x:{width}}", x="w", width=6),
        ]:
            self.assertSameLine(e)

    def test_everyOtherKindOfEvent(self) -> None:
        for e in [
            event("called: {p.name()}", p=Point()),  # Twisted calls it
            event("{missing}"),  # "Unable to format event ..."
            event("{0} {}"),  # positional fields
            event("{x!z}", x=1),  # bad conversion
            event(b"bytes {x}", x=1),
            event(""),
            event(None),
            event("system {x}", x=1, log_system="legacy-system"),
            event("failed: {x}", x=1, log_failure=twistedFailure()),
            event("no level {x}", x=1, log_level=None),
            event("no time {x}", x=1, log_time=None),
            event("no namespace {x}", x=1, log_namespace=None),
            {"log_format": "bare {x}", "x": 1},
            {},
        ]:
            self.assertSameLine(e)

    @given(
        st.lists(
            st.text(alphabet="ab{}!rs:>.0x()\n\t é", max_size=20),
            min_size=1,
            max_size=5,
        ),
        st.dictionaries(
            st.sampled_from(["a", "b", "x", "ab"]),
            st.integers() | st.text(alphabet="aZé\n{}", max_size=5),
        ),
    )
    def test_anyFormat(self, pieces: list[str], fields: dict[str, Any]) -> None:
        """
        Any format string and fields, formattable or not.
        """
        self.assertSameLine(event("".join(pieces), **fields))

    def test_timestampsNearTheNextSecond(self) -> None:
        """
        A time within half a microsecond of the next second is formatted as
        that second (Twisted's formatting rounds to microseconds).
        """
        self.assertSameTimestamps([T, T + 0.9999999, T + 0.75, -1.0, -1e-13, 1.9999999999])

    @given(st.lists(st.floats(min_value=-1e9, max_value=4e9), min_size=1, max_size=8))
    def test_timestampsInAnyOrder(self, times: list[float]) -> None:
        """
        The timestamp is computed once per second and is still right for
        each event, whichever second came before.
        """
        self.assertSameTimestamps(times)


class ObserverTests(SynchronousTestCase):
    """
    L{textLogObserver} writes and flushes each line as it comes.
    """

    def test_writesAndFlushesEachLine(self) -> None:
        flushed = []

        class File(io.StringIO):
            def flush(self) -> None:
                flushed.append(self.getvalue())

        out = File()
        observe = textLogObserver(out)
        observe(event("one {n}", n=1))
        observe(event(""))  # no text, no line
        observe(event("two {n}", n=2))
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 2)
        self.assertTrue(lines[0].endswith(" [uppercase.server#info] one 1"), lines[0])
        self.assertEqual(flushed, [lines[0] + "\n", out.getvalue()])

    def test_bytesFileGetsUTF8(self) -> None:
        out = io.BytesIO()
        textLogObserver(out)(event("caf{e}", e="é"))
        self.assertTrue(out.getvalue().endswith(" [uppercase.server#info] café\n".encode()))


class TwistdWiringTests(SynchronousTestCase):
    """
    twistd logs through the fast text log wherever it would have written its
    own text log (standard output or a file), and otherwise keeps what it
    was told.
    """

    def loggerFor(self, *argv: str) -> Any:
        config = TwistdOptions()
        config.parseOptions([*argv])
        return config["logger"]

    def test_foregroundToStdout(self) -> None:
        """
        In the foreground with no log file (or C{--logfile=-}), both plugins
        log to standard output through L{textlog.stdout}.
        """
        for plugin in (
            ["uppercase", "--listen", "tcp:0"],
            ["uppercase-client", "--count", "1"],
        ):
            self.assertIs(self.loggerFor("-n", *plugin), textlog.stdout)
            self.assertIs(self.loggerFor("-n", "--logfile=-", *plugin), textlog.stdout)

    def test_logFiles(self) -> None:
        """
        With C{--logfile PATH}, or in daemon mode (twistd's C{twistd.log}),
        the log goes to that file through L{textlog.logfile}.
        """
        self.patch(textlog, "_configuredPath", None)
        server = ["uppercase", "--listen", "tcp:0"]
        self.assertIs(self.loggerFor("-n", "--logfile=server.log", *server), textlog.logfile)
        self.assertEqual(textlog._configuredPath, "server.log")
        self.assertIs(self.loggerFor(*server), textlog.logfile)
        self.assertEqual(textlog._configuredPath, "twistd.log")

    def test_otherChoicesKept(self) -> None:
        """
        C{--syslog} and C{--logger} are left as they are.
        """
        server = ["uppercase", "--listen", "tcp:0"]
        self.assertIsNone(self.loggerFor("-n", "--syslog", *server))
        chosen = self.loggerFor("-n", "--logger=uppercase.jsonlog.stdout", *server)
        self.assertIs(chosen, jsonlog.stdout)


class UnwritablePathTests(SynchronousTestCase):
    """
    A log file or pid file that cannot be written is one line and a
    non-zero exit, not a traceback.
    """

    def setUp(self) -> None:
        from tests.unit.cli.test_server import keepSignals

        # Loading the plugin's options ignores the start-up signals.
        keepSignals(self)
        self.folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.folder)
        self.patch(textlog, "_openLogFiles", [])
        self.patch(sys, "argv", ["twistd"])

    def test_logFile(self) -> None:
        """
        L{textlog.logfile} on a path in a missing folder, or on a folder,
        exits with one line naming the path and the reason.
        """
        for path, reason in [
            (os.path.join(self.folder, "missing", "u.log"), "No such file or directory"),
            (self.folder, "Is a directory"),
        ]:
            textlog.useLogFile(path)
            error = self.assertRaises(SystemExit, textlog.logfile)
            self.assertEqual(error.code, f"twistd: cannot open the log file {path!r}: {reason}")
        self.assertEqual(textlog._openLogFiles, [])

    def test_pidFile(self) -> None:
        """
        twistd's C{--pidfile} in a missing folder, or naming a folder, is a
        usage error of both plugins (one line, status 2), and creates
        nothing; a writable one, or none, is fine.
        """
        missing = os.path.join(self.folder, "missing", "u.pid")
        for plugin in (["uppercase", "--listen", "tcp:0"], ["uppercase-client", "--count", "1"]):
            for path, problem in [
                (missing, f"no directory {os.path.dirname(missing)}"),
                (self.folder, "it is a directory"),
            ]:
                stderr = io.StringIO()
                self.patch(sys, "stderr", stderr)
                error = self.assertRaises(
                    SystemExit, TwistdOptions().parseOptions, ["-n", f"--pidfile={path}", *plugin]
                )
                self.assertEqual(error.code, 2)
                self.assertEqual(
                    stderr.getvalue().splitlines()[0],
                    f"twistd {plugin[0]}: cannot write the pid file {path!r}: {problem}",
                )
            for fine in ("", os.path.join(self.folder, "u.pid")):
                TwistdOptions().parseOptions(["-n", f"--pidfile={fine}", *plugin])
        self.assertEqual(os.listdir(self.folder), [])


class LogFileTests(SynchronousTestCase):
    """
    A log file opened by L{textlog.logfile} is reopened on SIGUSR1 if it was
    moved away (logrotate), and rotated as twistd does otherwise.
    """

    def setUp(self) -> None:
        self.folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.folder)
        self.path = os.path.abspath(os.path.join(self.folder, "u.log"))
        self.patch(textlog, "_openLogFiles", [])
        textlog.useLogFile(self.path)
        self.observer = textlog.logfile()

    def write(self, text: str) -> None:
        self.observer(event(text))

    def read(self, path: str) -> str:
        with open(path) as f:
            return f.read()

    def test_reopenedAfterMove(self) -> None:
        """
        After logrotate renames the file, SIGUSR1's reopen makes the next
        lines go to a new file at the path; the old lines stay in the
        renamed one.
        """
        self.write("before")
        os.rename(self.path, self.path + ".1")
        self.assertEqual(textlog.reopenLogFiles(), [f"reopened {self.path}"])
        self.write("after")
        self.assertIn("before", self.read(self.path + ".1"))
        self.assertNotIn("after", self.read(self.path + ".1"))
        self.assertIn("after", self.read(self.path))

    def test_rotatedInPlace(self) -> None:
        """
        If nothing moved the file, SIGUSR1 rotates it as twistd does
        (C{u.log} becomes C{u.log.1}).
        """
        self.write("before")
        self.assertEqual(textlog.reopenLogFiles(), [f"rotated {self.path}"])
        self.write("after")
        self.assertIn("before", self.read(self.path + ".1"))
        self.assertIn("after", self.read(self.path))
        self.assertNotIn("before", self.read(self.path))


class FlushingReactor:
    """
    A running reactor, as far as L{BufferedFileLogObserver} can tell: a
    clock and its shutdown triggers.
    """

    running = True

    def __init__(self) -> None:
        self.clock = Clock()
        self.triggers: list[tuple[str, str, Any]] = []

    def callLater(self, delay: float, f: Any) -> Any:
        return self.clock.callLater(delay, f)

    def addSystemEventTrigger(self, phase: str, kind: str, f: Any) -> None:
        self.triggers.append((phase, kind, f))


class CountingFile(io.StringIO):
    """
    A file that counts its flushes.
    """

    flushes = 0

    def flush(self) -> None:
        self.flushes += 1


class BufferedObserverTests(SynchronousTestCase):
    """
    While the reactor runs, lines are flushed within 100 ms, not one by one;
    warnings at once; and what is buffered is flushed when the reactor
    stops.
    """

    def setUp(self) -> None:
        self.reactor = FlushingReactor()
        self.out = CountingFile()
        self.observer = BufferedFileLogObserver(self.out, ClassicTextFormat(), self.reactor)

    def test_flushedWithinTheDelay(self) -> None:
        """
        A hundred lines in a burst are flushed once, L{FLUSH_DELAY} seconds
        after the first.
        """
        for i in range(100):
            self.observer(event("line {i}", i=i))
        self.assertEqual(self.out.flushes, 0)
        self.reactor.clock.advance(FLUSH_DELAY)
        self.assertEqual(self.out.flushes, 1)
        self.assertEqual(self.out.getvalue().count("\n"), 100)
        self.assertEqual(self.reactor.clock.getDelayedCalls(), [])

    def test_warningsAtOnce(self) -> None:
        """
        A warning is flushed at once, with what was buffered before it.
        """
        self.observer(event("info"))
        warning = event("careful")
        warning["log_level"] = LogLevel.warn
        self.observer(warning)
        self.assertEqual(self.out.flushes, 1)
        self.assertEqual(self.reactor.clock.getDelayedCalls(), [])

    def test_flushedWhenTheReactorStops(self) -> None:
        """
        The observer flushes after the reactor's shutdown.
        """
        self.observer(event("last words"))
        [(phase, kind, flush)] = self.reactor.triggers
        self.assertEqual((phase, kind), ("after", "shutdown"))
        flush()
        self.assertEqual(self.out.flushes, 1)

    def test_notRunningFlushesAtOnce(self) -> None:
        """
        Before the reactor runs (start-up) each line is flushed at once.
        """
        self.reactor.running = False
        self.observer(event("starting"))
        self.assertEqual(self.out.flushes, 1)
