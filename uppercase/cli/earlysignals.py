"""
Start-up's signals: C{SIGHUP}, C{SIGUSR1} and C{SIGUSR2} kill a process by
default, and the server gives them their meaning (L{uppercase.cli.signals})
only once its reactor runs.  L{ignoreUntilInstalled} holds them off from as
early as the command line can: when C{twistd uppercase} (or C{twist
uppercase}) loads the server's options, or when C{python -m uppercase}
starts.  It imports nothing, to run before the rest is imported.
"""

from __future__ import annotations

import signal

__all__ = ["EARLY", "ignoreUntilInstalled"]

EARLY = ("SIGHUP", "SIGUSR1", "SIGUSR2")
"""The signals L{ignoreUntilInstalled} holds off."""


def ignoreUntilInstalled() -> None:
    """
    Ignore C{SIGHUP}, C{SIGUSR1} and C{SIGUSR2} where they are at their
    default action (which kills the process), until the server's own
    handlers replace that: one sent during start-up (a reload, a log
    rotation) is lost rather than fatal.  Handlers already set are kept.
    """
    for name in EARLY:
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) == signal.SIG_DFL:
            signal.signal(number, signal.SIG_IGN)
