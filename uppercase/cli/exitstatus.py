"""
The exit status of C{twistd uppercase-client}, which twistd cannot set.

twistd has no exit-status mechanism: once the reactor stops, C{runApp}
returns and the process exits 0 (it only re-raises a stopping signal, so
SIGTERM and SIGINT still end it by that signal).  An exception out of
C{reactor.run()} is printed as a traceback and the status is still 0;
C{SystemExit} raised in a system event trigger is caught and logged by the
reactor; C{SystemExit} raised in an C{atexit} handler does not change the
status.

What works: an C{atexit} handler that calls C{os._exit(status)}.  Exit
handlers run after twistd has stopped the reactor, logged its last line and
removed its pid file; C{os._exit} then ends the process at once with the
status.  Exit handlers registered before this one (they run after it) are
skipped, which is why it flushes standard output and error first; Twisted's
log observers flush every line as they write it.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import Any, Callable


def exitWithStatusAtExit(status: int, register: Callable[..., Any] = atexit.register) -> None:
    """
    Make the process exit with C{status} once the interpreter exits.

    @param register: how to register the exit handler; tests pass their
        own, so that the test run is not ended by it.
    """
    register(_exitNow, status)


def _exitNow(status: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)
