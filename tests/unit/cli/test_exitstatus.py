"""
Specification of L{uppercase.cli.exitstatus}: the exit status twistd cannot set.
"""

from __future__ import annotations

import io
import sys
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from uppercase.cli import exitstatus


class ExitStatusTests(SynchronousTestCase):
    """
    L{exitstatus.exitWithStatusAtExit}: the exit status twistd cannot set.
    """

    def test_registersAnExitHandler(self) -> None:
        """
        It registers one exit handler which, when run, flushes standard
        output and error, then ends the process with the status at once.
        """
        registered: list[tuple[Any, tuple[Any, ...]]] = []
        events: list[object] = []

        class Stream(io.StringIO):
            def __init__(self, name: str) -> None:
                super().__init__()
                self.name = name

            def flush(self) -> None:
                events.append(("flush", self.name))

        exitstatus.exitWithStatusAtExit(3, register=lambda f, *a: registered.append((f, a)))
        [(handler, args)] = registered
        self.assertEqual(events, [])
        self.patch(sys, "stdout", Stream("stdout"))
        self.patch(sys, "stderr", Stream("stderr"))
        self.patch(exitstatus.os, "_exit", lambda status: events.append(("exit", status)))
        handler(*args)
        self.assertEqual(events, [("flush", "stdout"), ("flush", "stderr"), ("exit", 3)])
