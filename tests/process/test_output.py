"""
The installed commands when their standard output cannot be written: a
closed pipe (C{| head -1}) ends them quietly with status 141, as SIGPIPE
ends C{cat}; a full disk (C{> /dev/full}) is one line on standard error and
status 1.  Never a traceback, never a process left running.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from typing import Sequence

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from ._process import DEADLINE, Server, script

CLOSED = 141
"""128 + SIGPIPE."""


def runInto(argv: Sequence[str], stdout: int | str) -> subprocess.CompletedProcess[str]:
    """
    Run C{argv} to completion (bounded by L{DEADLINE}) with its standard
    output C{"closed"} (a pipe whose reading end is already closed, as
    after C{head -1} has read its line) or the file at path C{stdout},
    capturing its standard error.
    """
    with tempfile.TemporaryDirectory() as fresh:
        if stdout == "closed":
            readEnd, writeEnd = os.pipe()
            os.close(readEnd)
        else:
            assert isinstance(stdout, str)
            writeEnd = os.open(stdout, os.O_WRONLY)
        try:
            return subprocess.run(
                list(argv),
                cwd=fresh,
                stdin=subprocess.DEVNULL,
                stdout=writeEnd,
                stderr=subprocess.PIPE,
                text=True,
                timeout=DEADLINE,
            )
        finally:
            os.close(writeEnd)


def requireDevFull() -> None:
    """
    Skip the calling test where there is no C{/dev/full}.
    """
    if not os.path.exists("/dev/full"):
        raise SkipTest("no /dev/full here")


class HelpTests(SynchronousTestCase):
    """
    C{--help} into a closed pipe, for every command that prints ours.
    """

    def test_helpIntoClosedPipe(self) -> None:
        """
        C{uppercase-client --help}, C{twistd uppercase --help}, C{twist
        uppercase --help} and C{python -m uppercase --help} into a closed
        pipe: status 141, nothing on standard error.
        """
        for argv in (
            script("uppercase-client") + ["--help"],
            script("twistd") + ["uppercase", "--help"],
            script("twist") + ["uppercase", "--help"],
            [sys.executable, "-m", "uppercase", "--help"],
        ):
            result = runInto(argv, "closed")
            self.assertEqual((result.returncode, result.stderr), (CLOSED, ""), argv)


class RunOutputTests(SynchronousTestCase):
    """
    A run of C{uppercase-client} against a real server, its output a closed
    pipe or a full disk.
    """

    def setUp(self) -> None:
        self.server = Server()
        self.addCleanup(self.server.stop)
        self.connect = f"tcp:127.0.0.1:{self.server.port}"

    def client(self, *args: str) -> list[str]:
        return script("uppercase-client") + ["--connect", self.connect, *args]

    def test_pingIntoClosedPipe(self) -> None:
        """
        The ping-like client whose first reply meets a closed pipe ends at
        once (not after its 30 replies), quietly, with status 141.
        """
        result = runInto(self.client("--count", "30", "--interval", "1", "--json"), "closed")
        self.assertEqual((result.returncode, result.stderr), (CLOSED, ""))

    def test_loadIntoClosedPipe(self) -> None:
        """
        A load run whose first JSON line meets a closed pipe ends at once
        (not after its 30 seconds), quietly, with status 141.
        """
        result = runInto(self.client("--connections", "2", "--duration", "30", "--json"), "closed")
        self.assertEqual(result.returncode, CLOSED, result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        self.assertNotIn("uppercase-client:", result.stderr)

    def test_pingIntoFullDisk(self) -> None:
        """
        The ping-like client writing to C{/dev/full}: one line on standard
        error, status 1, at once.
        """
        requireDevFull()
        result = runInto(self.client("--count", "30", "--interval", "1"), "/dev/full")
        self.assertEqual(
            (result.returncode, result.stderr),
            (1, "uppercase-client: cannot write the output: No space left on device\n"),
        )

    def test_loadIntoFullDisk(self) -> None:
        """
        A load run writing to C{/dev/full}: one line on standard error (after
        the progress lines), status 1, at once.
        """
        requireDevFull()
        for extra in ([], ["--json"]):
            result = runInto(
                self.client("--connections", "2", "--duration", "2", *extra), "/dev/full"
            )
            self.assertEqual(result.returncode, 1, result.stderr)
            lines = [line for line in result.stderr.splitlines() if not line.startswith("[")]
            self.assertEqual(
                lines, ["uppercase-client: cannot write the output: No space left on device"]
            )

    def test_twistdLogIntoClosedPipe(self) -> None:
        """
        C{twistd -n uppercase-client} whose log goes to a closed pipe still
        ends when its run is over.
        """
        result = runInto(
            script("twistd")
            + ["-n", "--pidfile=", "uppercase-client", "--connect", self.connect]
            + ["--count", "2", "--interval", "0.1"],
            "closed",
        )
        self.assertNotIn("Traceback", result.stderr)
